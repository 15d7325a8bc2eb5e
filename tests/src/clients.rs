//! Third-party shippers for the end-to-end tests, installed from their registries into a
//! cache directory once per machine and run offline afterwards.
//!
//! npm clients: `tests/clients/package.json` and its lock file pin winston-loki, pino-loki and
//! their dependencies; [`npm_clients`] runs `npm ci` from the lock file into
//! `$XDG_CACHE_HOME/fjord-ci/npm-clients-<hash of the lock file>` (or under `~/.cache`) the
//! first time, then copies the test scripts next to the installed `node_modules`, so that
//! Node resolves the packages from there. `.ci/run` calls the same installation before the
//! tests; a test run that finds it done needs no network.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The checked-in client sources.
fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// The cache root for installed clients.
fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("fjord-ci")
}

/// The directory holding the npm clients and their `node_modules`, installed if need be.
/// Panics with what to do when npm is missing or the installation fails.
pub fn npm_clients() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = sources();
        let lock = std::fs::read(src.join("package-lock.json")).expect("tests/clients/package-lock.json");
        let hash = hex::encode(&Sha256::digest(&lock)[..6]);
        let dir = cache_root().join(format!("npm-clients-{hash}"));
        let done = dir.join("node_modules/.fjord-installed");
        if !done.exists() {
            std::fs::create_dir_all(&dir).expect("create the npm clients cache directory");
            for f in ["package.json", "package-lock.json"] {
                std::fs::copy(src.join(f), dir.join(f)).expect("copy the npm manifest");
            }
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| {
                    panic!("running npm ({e}): the shipper tests need Node.js and npm (apt-get install nodejs npm)")
                });
            assert!(
                out.status.success(),
                "npm ci in {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&done, b"").expect("mark the npm clients installed");
        }
        // The scripts are copied every run, so an edited script is what runs.
        for entry in std::fs::read_dir(&src).expect("tests/clients").flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "js") {
                std::fs::copy(&p, dir.join(entry.file_name())).expect("copy a client script");
            }
        }
        dir
    })
}

/// Runs `node <script> <args>` from the npm clients directory; returns its exit status and
/// its stderr.
pub fn run_node(script: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = npm_clients();
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run node");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
