//! `token hash` and `token new`: so that operators never put a plaintext token in the config.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::TokenNewArgs;
use crate::server::auth::hash_token;

/// Random bytes in a new token (256 bits).
const TOKEN_BYTES: usize = 32;

/// Reads a token from stdin and prints its hex SHA-256.
pub fn hash() -> anyhow::Result<ExitCode> {
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .context("reading the token from stdin")?;
    if s.trim().is_empty() {
        bail!("no token on stdin; e.g. `fjord-aggregator token hash < token.txt`");
    }
    println!("{}", hash_token(&s));
    Ok(ExitCode::SUCCESS)
}

/// Generates a token from /dev/urandom and prints it with its config entry.
pub fn new(a: TokenNewArgs) -> anyhow::Result<ExitCode> {
    if a.role != "admin" && a.team.is_none() {
        bail!("--team is required for role {}", a.role);
    }
    let mut raw = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .context("reading /dev/urandom")?;
    let token = format!("fjd_{}", hex::encode(raw));
    println!("token (give it to the client; it is not stored anywhere):\n  {token}\n");
    println!("config entry:\n[[token]]");
    println!("name = {:?}", a.name);
    println!("sha256 = {:?}", hash_token(&token));
    if let Some(t) = &a.team {
        println!("team = {t:?}");
    }
    println!("role = {:?}", a.role);
    Ok(ExitCode::SUCCESS)
}
