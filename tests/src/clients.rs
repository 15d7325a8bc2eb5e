//! Third-party shippers for the end-to-end tests, installed from their registries into a
//! cache directory once per machine and run offline afterwards.
//!
//! Each npm directory under `tests/` (`clients/`: winston-loki and pino-loki; `logql-oracle/`:
//! Grafana's LogQL grammar) pins its packages with a lock file; [`npm_dir`] runs `npm ci`
//! from the lock file into `$XDG_CACHE_HOME/fjord-ci/npm-<name>-<hash of the lock file>` (or
//! under `~/.cache`) the first time, then copies the directory's scripts next to the
//! installed `node_modules`, so that Node resolves the packages from there. A test run that
//! finds the installation done needs no network.
//!
//! The Python clients (`clients/python/`: the OpenTelemetry SDK and its OTLP/HTTP exporter)
//! are pinned by a requirements file with hashes; [`python_clients`] makes a venv of them in
//! `fjord-ci/py-clients-<hash of the file>` the same way, and [`run_python`] runs a script of
//! that directory with the venv's interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The cache root for installed clients.
fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("fjord-ci")
}

/// The shipper clients of `tests/clients`, installed if need be.
pub fn npm_clients() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| npm_dir("clients"))
}

/// The installed copy of the npm directory `tests/<name>`: its `node_modules` and scripts.
/// Panics with what to do when npm is missing or the installation fails.
pub fn npm_dir(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let lock = std::fs::read(src.join("package-lock.json"))
        .unwrap_or_else(|e| panic!("tests/{name}/package-lock.json: {e}"));
    let hash = hex::encode(&Sha256::digest(&lock)[..6]);
    let dir = cache_root().join(format!("npm-{name}-{hash}"));
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
    for entry in std::fs::read_dir(&src)
        .expect("the npm directory")
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "js" || e == "cjs") {
            std::fs::copy(&p, dir.join(entry.file_name())).expect("copy a client script");
        }
    }
    dir
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

/// The venv of the Python clients of `tests/clients/python`, installed if need be. Panics
/// with what to do when Python's venv module is missing or the installation fails.
pub fn python_clients() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python");
        let reqs = src.join("requirements.txt");
        let pinned = std::fs::read(&reqs)
            .unwrap_or_else(|e| panic!("tests/clients/python/requirements.txt: {e}"));
        let hash = hex::encode(&Sha256::digest(&pinned)[..6]);
        let venv = cache_root().join(format!("py-clients-{hash}"));
        let done = venv.join(".fjord-installed");
        if !done.exists() {
            // What an interrupted installation left is not trusted.
            let _ = std::fs::remove_dir_all(&venv);
            std::fs::create_dir_all(cache_root()).expect("create the clients cache directory");
            run_ok(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                "python3 -m venv (the OpenTelemetry client tests need Python 3.10+ with venv: apt-get install python3 python3-venv)",
            );
            run_ok(
                Command::new(venv.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-input",
                        "--require-hashes",
                        "--only-binary=:all:",
                        "--no-deps",
                        "-r",
                    ])
                    .arg(&reqs),
                "pip install -r tests/clients/python/requirements.txt",
            );
            std::fs::write(&done, b"").expect("mark the Python clients installed");
        }
        venv
    })
}

/// Runs `cmd`, panicking with `what` and its stderr unless it succeeds.
fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `python tests/clients/python/<script> <args>` with the clients' venv, in an
/// environment of its own (no `OTEL_*` or proxy settings of the caller's); returns its exit
/// status and its stderr.
pub fn run_python(script: &str, args: &[&str]) -> (Option<i32>, String) {
    let venv = python_clients();
    let out = Command::new(venv.join("bin/python"))
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("clients/python")
                .join(script),
        )
        .args(args)
        .env_clear()
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
