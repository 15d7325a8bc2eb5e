//! The aggregator's TLS listener, end to end: push (the agent with `ca_file`), query, labels,
//! stats, tail over wss and `/v1/info` over https; TLS 1.2 and 1.3 and nothing older; plain
//! HTTP refused with a reason; the certificate reloaded when cert-manager-style files change
//! (and a bad renewal kept out); client certificates with `--tls-client-ca`; and every kind
//! of bad certificate input refused with a message naming the file, exit 64, or (at run
//! time) a refused and counted connection. Certificates are made at test time (rcgen).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fjord_e2e::certs::{Ca, Leaf};
use fjord_e2e::tls::{https_get, ClientTls};
use fjord_e2e::{agent_config, bin, start_agent, wait_for, Aggregator};
use tokio_rustls::rustls;

/// A test's directory with a CA and a server certificate it signed, written as files.
struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn setup() -> Setup {
    let dir = fjord_e2e::test_dir();
    let ca = Ca::new("fjord test CA");
    let ca_file = ca.write(&dir.path().join("ca.pem"));
    let (cert, key) = ca.server().write(dir.path(), "server");
    Setup {
        dir,
        ca,
        ca_file,
        cert,
        key,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

impl Setup {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `--tls-cert`/`--tls-key` of the server certificate, then `extra`.
    fn start(&self, extra: &[&str], client: ClientTls) -> Aggregator {
        let mut args = vec!["--tls-cert", s(&self.cert), "--tls-key", s(&self.key)];
        args.extend_from_slice(extra);
        Aggregator::start_tls(self.path(), &args, client)
    }
}

/// One of the aggregator's event counters (`/fjord/v1/stats`; open mode answers as admin).
fn counter(agg: &Aggregator, name: &str) -> u64 {
    let Ok((200, body)) = agg.get("/fjord/v1/stats") else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["counters"][name].as_u64().unwrap_or(0)
}

/// Runs the aggregator binary with `args`; (exit code, stderr). Killed after 30 s, which
/// fails the test: every command here ends by itself.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(bin("fjord-aggregator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fjord-aggregator");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fjord-aggregator {args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.code(), text)
}

fn write_lines(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("logs/app.log"))
        .unwrap();
    for i in 0..n {
        writeln!(f, "tls line {i}").unwrap();
    }
}

/// Everything a client does, over TLS: the agent pushes (trusting the CA with `ca_file`),
/// `/v1/info` answers, and the CLI's query, labels, stats and tail (wss) work with
/// `--ca-file`. Without the CA, the CLI refuses the server and says to pass `--ca-file`.
#[test]
fn push_query_tail_and_info_over_tls() {
    const LINES: usize = 25;
    let t = setup();
    let agg = t.start(&[], ClientTls::ca(t.ca_file.clone()));
    assert!(agg.url().starts_with("https://"));

    let (status, body) = agg.get("/v1/info").expect("info over TLS");
    assert_eq!(status, 200);
    assert!(body.contains("\"EEA\""), "{body}");

    write_lines(t.path(), LINES);
    let cfg = agent_config(
        t.path(),
        &agg.url(),
        &format!("ca_file = \"{}\"", t.ca_file.display()),
    );
    let _agent = start_agent(t.path(), &cfg);
    wait_for("every line over TLS", Duration::from_secs(60), || {
        agg.stored_records() == LINES as u64
    });

    let rows = agg.query_jsonl(r#"{team="payments"}"#, 1000);
    assert_eq!(rows.len(), LINES);
    for args in [&["labels"][..], &["labels", "team"], &["stats"]] {
        let out = agg.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = agg.cli(&["labels", "team"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("payments"));

    // tail: the history since 1h, over wss, then it stops at --max-lines.
    let n = LINES.to_string();
    let url = agg.url();
    let ca = t.ca_file.display().to_string();
    let (code, out) = run(&[
        "tail",
        r#"{team="payments"}"#,
        "--since",
        "1h",
        "--limit",
        "1000",
        "--max-lines",
        &n,
        "--output",
        "raw",
        "--url",
        &url,
        "--ca-file",
        &ca,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("tls line ")).count(),
        LINES,
        "{out}"
    );

    // Without the CA: refused, with what to do.
    let (code, out) = run(&["query", r#"{team="payments"}"#, "--url", &url]);
    assert_ne!(code, Some(0));
    assert!(out.contains("--ca-file"), "{out}");
    let (code, out) = run(&["tail", r#"{team="payments"}"#, "--url", &url]);
    assert_ne!(code, Some(0));
    assert!(
        out.contains("--ca-file") && out.contains("certificate"),
        "{out}"
    );
}

/// A TLS 1.2-only client and a TLS 1.3-only client both connect, and each gets its version;
/// a client offering at most TLS 1.1 gets a fatal alert, and the failure is counted.
#[test]
fn tls12_and_tls13_are_spoken_and_nothing_older() {
    let t = setup();
    let client = ClientTls::ca(t.ca_file.clone());
    let agg = t.start(&[], client.clone());
    for (version, expect) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let a = https_get(agg.addr, client.config(&[version]), "/v1/info").expect("handshake");
        assert_eq!(a.status, 200);
        assert_eq!(a.version, Some(expect));
    }

    // rustls has no TLS 1.1 client: a ClientHello offering at most TLS 1.1 (no
    // supported_versions extension), by hand.
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // no session id
                   // Suites rustls has (ECDHE-ECDSA/RSA-AES128-GCM), so only the version can be the fault.
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]);
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
                                            // signature_algorithms (ecdsa_secp256r1_sha256) and supported_groups (secp256r1), which
                                            // rustls asks for before it looks at the version.
    hello.extend_from_slice(&[
        0x00, 0x10, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03, 0x00, 0x0a, 0x00, 0x04, 0x00,
        0x02, 0x00, 0x17,
    ]);
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    let mut sock = TcpStream::connect(agg.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(&record).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "an alert record, not a ServerHello: {answer:?}"
    );
    // The alert's description: protocol_version (70).
    assert_eq!(answer.get(6), Some(&70), "{answer:?}");
    wait_for("the refusal counted", Duration::from_secs(10), || {
        counter(&agg, "tls_handshake_errors") >= 1
    });
}

/// Plain HTTP on the TLS port is answered at once with a 400 that says the port speaks TLS
/// (instead of a hang or TLS bytes), and counted; a client that opens a connection and says
/// nothing is dropped after the handshake timeout (header_read_timeout), and until then it
/// holds one of the `max_connections` permits like any connection. Both are counted, in
/// `/fjord/v1/stats` and on `/metrics`.
#[test]
fn plain_http_and_silent_clients_are_refused() {
    let t = setup();
    let config = t.path().join("aggregator.toml");
    let metrics_port = fjord_e2e::free_port();
    std::fs::write(
        &config,
        format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n[listener]\nheader_read_timeout = \"500ms\"\nmax_connections = 4\n"),
    )
    .unwrap();
    let client = ClientTls::ca(t.ca_file.clone());
    let agg = t.start(&["--config", s(&config)], client.clone());

    // Four silent connections hold every permit: a real client gets through only once the
    // handshake timeout has closed one of them.
    let opened = Instant::now();
    let silent: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(agg.addr).unwrap())
        .collect();
    let a = https_get(agg.addr, client.config(&[]), "/v1/info").expect("served after the timeout");
    assert_eq!(a.status, 200);
    assert!(
        opened.elapsed() >= Duration::from_millis(400),
        "served after {:?}, before a silent connection timed out",
        opened.elapsed()
    );
    wait_for("4 timeouts counted", Duration::from_secs(10), || {
        counter(&agg, "tls_handshake_errors") >= 4
    });
    drop(silent);

    let (status, body) = fjord_e2e::http_get(agg.addr, "/v1/info").expect("an answer");
    assert_eq!(status, 400);
    assert!(body.contains("this port speaks TLS"), "{body}");
    assert_eq!(counter(&agg, "plain_http_refused"), 1);
    // Also on /metrics (plain HTTP on its own port).
    let metrics_addr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let (_, text) = fjord_e2e::http_get(metrics_addr, "/metrics").expect("/metrics");
    assert!(
        text.lines()
            .any(|l| l == "fjord_aggregator_tls_plain_http_refused_total 1"),
        "{text}"
    );

    let errors = counter(&agg, "tls_handshake_errors");
    let mut silent = TcpStream::connect(agg.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_for("the timeout counted", Duration::from_secs(10), || {
        counter(&agg, "tls_handshake_errors") > errors
    });
}

/// Swaps a Kubernetes-Secret-style `..data` symlink to a new directory holding `leaf`, as
/// the kubelet does when cert-manager renews: the file names never change.
fn swap_secret(certs: &Path, generation: u32, cert_pem: &str, key_pem: &str) {
    let gen_dir = certs.join(format!("..gen_{generation}"));
    std::fs::create_dir_all(&gen_dir).unwrap();
    std::fs::write(gen_dir.join("tls.crt"), cert_pem).unwrap();
    std::fs::write(gen_dir.join("tls.key"), key_pem).unwrap();
    let tmp = certs.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..gen_{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, certs.join("..data")).unwrap();
}

fn served_cert(agg: &Aggregator, client: &ClientTls) -> Option<Vec<u8>> {
    https_get(agg.addr, client.config(&[]), "/ready")
        .ok()
        .and_then(|a| a.server_cert)
}

/// cert-manager renews in place: the certificate files behind a `..data` symlink change
/// under the running server. A renewal that does not load (not PEM; a key of another
/// certificate; expired) is counted and the certificate in use stays; the next good one is
/// served on new handshakes, without a restart.
#[test]
fn certificate_reloads_when_its_files_change() {
    let t = setup();
    let certs = t.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let first = t.ca.server();
    swap_secret(&certs, 1, &first.cert_pem, &first.key_pem);
    std::os::unix::fs::symlink("..data/tls.crt", certs.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", certs.join("tls.key")).unwrap();
    let config = t.path().join("aggregator.toml");
    std::fs::write(&config, "[tls]\nreload_interval = \"1s\"\n").unwrap();
    let client = ClientTls::ca(t.ca_file.clone());
    let agg = Aggregator::start_tls(
        t.path(),
        &[
            "--config",
            s(&config),
            "--tls-cert",
            s(&certs.join("tls.crt")),
            "--tls-key",
            s(&certs.join("tls.key")),
        ],
        client.clone(),
    );
    assert_eq!(served_cert(&agg, &client), Some(first.cert_der()));

    let other = t.ca.server();
    let expired = t.ca.expired_server();
    let bad: [(&str, &str); 3] = [
        ("not a certificate", &first.key_pem),
        (&other.cert_pem, &first.key_pem),
        (&expired.cert_pem, &expired.key_pem),
    ];
    for (i, (cert, key)) in bad.iter().enumerate() {
        swap_secret(&certs, 2 + i as u32, cert, key);
        wait_for("the bad renewal counted", Duration::from_secs(20), || {
            counter(&agg, "tls_reload_errors") == i as u64 + 1
        });
        assert_eq!(
            served_cert(&agg, &client),
            Some(first.cert_der()),
            "a renewal that does not load leaves the certificate in use"
        );
    }
    assert_eq!(counter(&agg, "tls_reloads"), 0);

    let renewed = t.ca.server();
    swap_secret(&certs, 9, &renewed.cert_pem, &renewed.key_pem);
    wait_for(
        "the renewed certificate served",
        Duration::from_secs(20),
        || served_cert(&agg, &client) == Some(renewed.cert_der()),
    );
    assert_eq!(counter(&agg, "tls_reloads"), 1);
    let log = std::fs::read_to_string(t.path().join("aggregator.log")).unwrap();
    assert!(log.contains("TLS certificate not reloaded"), "{log}");
    assert!(log.contains("expired at 2021-01-01"), "{log}");
}

/// With `--tls-client-ca`, a client certificate that CA signed is required: the agent (with
/// `client_cert_file`/`client_key_file`) and the CLI (`--client-cert`/`--client-key`) get
/// through; no certificate, or one another CA signed, is refused in the handshake and
/// counted, and the server keeps serving; an agent without one logs what it lacks.
#[test]
fn client_certificates_are_required_with_tls_client_ca() {
    let t = setup();
    let clients = Ca::new("fjord clients CA");
    let clients_ca = clients.write(&t.path().join("clients-ca.pem"));
    let (good_cert, good_key) = clients.client("payment-agent").write(t.path(), "client");
    let rogue = Ca::new("another CA");
    let (rogue_cert, rogue_key) = rogue.client("payment-agent").write(t.path(), "rogue");
    let good = ClientTls {
        ca_file: t.ca_file.clone(),
        identity: Some((good_cert.clone(), good_key.clone())),
    };
    let agg = t.start(&["--tls-client-ca", s(&clients_ca)], good.clone());

    let a = https_get(agg.addr, good.config(&[]), "/v1/info").expect("the right certificate");
    assert_eq!(a.status, 200);
    let none = ClientTls::ca(t.ca_file.clone());
    let wrong = ClientTls {
        ca_file: t.ca_file.clone(),
        identity: Some((rogue_cert, rogue_key)),
    };
    for (what, c) in [("no client certificate", &none), ("another CA's", &wrong)] {
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let r = https_get(agg.addr, c.config(&[version]), "/v1/info");
            assert!(
                r.is_err() || r.as_ref().is_ok_and(|a| a.status == 0),
                "{what} over {version:?}: {r:?}"
            );
        }
    }
    wait_for("4 refusals counted", Duration::from_secs(10), || {
        counter(&agg, "tls_handshake_errors") >= 4
    });

    // An agent without a client certificate ships nothing and says what it lacks.
    write_lines(t.path(), 10);
    let before = counter(&agg, "tls_handshake_errors");
    let cfg = agent_config(
        t.path(),
        &agg.url(),
        &format!("ca_file = \"{}\"", t.ca_file.display()),
    );
    let agent = start_agent(t.path(), &cfg);
    wait_for("the agent refused", Duration::from_secs(30), || {
        counter(&agg, "tls_handshake_errors") > before
    });
    wait_for("the agent's reason", Duration::from_secs(30), || {
        agent_logs(t.path()).contains("the aggregator requires a client certificate")
    });
    assert_eq!(agg.stored_records(), 0);
    assert_eq!(agent.terminate(), Some(0));

    let cfg = agent_config(
        t.path(),
        &agg.url(),
        &format!(
            "ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
            t.ca_file.display(),
            good_cert.display(),
            good_key.display()
        ),
    );
    let _agent = start_agent(t.path(), &cfg);
    wait_for("every line over mTLS", Duration::from_secs(60), || {
        agg.stored_records() == 10
    });
    assert_eq!(agg.query_jsonl(r#"{team="payments"}"#, 100).len(), 10);
}

/// Everything the agents started in `dir` logged.
fn agent_logs(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("agent-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

/// Bad certificate input at start: each is refused before the port is bound, by `serve` and
/// by `check-config` alike, with exit 64 and a message that names the file and the fault.
#[test]
fn bad_certificate_input_is_refused_at_start() {
    let t = setup();
    let expired: Leaf = t.ca.expired_server();
    let (exp_cert, exp_key) = expired.write(t.path(), "expired");
    let (other_cert, _) = t.ca.server().write(t.path(), "other");
    let a_dir = t.path().join("a-directory");
    std::fs::create_dir_all(&a_dir).unwrap();
    let missing = t.path().join("missing.key");
    let junk = t.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();

    let cases: Vec<(&str, Vec<&str>, Vec<String>)> = vec![
        (
            "expired",
            vec!["--tls-cert", s(&exp_cert), "--tls-key", s(&exp_key)],
            vec![
                exp_cert.display().to_string(),
                "expired at 2021-01-01".into(),
            ],
        ),
        (
            "cert/key mismatch",
            vec!["--tls-cert", s(&other_cert), "--tls-key", s(&t.key)],
            vec![format!(
                "{} is not the private key of the certificate in {}",
                t.key.display(),
                other_cert.display()
            )],
        ),
        (
            "unreadable key (a directory)",
            vec!["--tls-cert", s(&t.cert), "--tls-key", s(&a_dir)],
            vec![format!("{}: cannot read", a_dir.display())],
        ),
        (
            "missing key",
            vec!["--tls-cert", s(&t.cert), "--tls-key", s(&missing)],
            vec![format!("{}: cannot read", missing.display())],
        ),
        (
            "no certificate in the file",
            vec!["--tls-cert", s(&t.key), "--tls-key", s(&t.key)],
            vec![format!("{}: no PEM certificate", t.key.display())],
        ),
        (
            "no key in the file",
            vec!["--tls-cert", s(&t.cert), "--tls-key", s(&t.cert)],
            vec![format!("{}: no PEM private key", t.cert.display())],
        ),
        (
            "broken PEM",
            vec!["--tls-cert", s(&junk), "--tls-key", s(&t.key)],
            vec![format!("{}: not a readable PEM file", junk.display())],
        ),
        (
            "client CA without a certificate in it",
            vec![
                "--tls-cert",
                s(&t.cert),
                "--tls-key",
                s(&t.key),
                "--tls-client-ca",
                s(&t.key),
            ],
            vec![format!(
                "invalid tls.client_ca_file: {}: no PEM certificate",
                t.key.display()
            )],
        ),
        (
            "client CA without TLS",
            vec!["--tls-client-ca", s(&t.ca_file)],
            vec!["client certificates need TLS".into()],
        ),
        (
            "certificate without key",
            vec!["--tls-cert", s(&t.cert)],
            vec!["--tls-key".into()],
        ),
        (
            "TLS does not open the token-less mode beyond loopback",
            vec![
                "--tls-cert",
                s(&t.cert),
                "--tls-key",
                s(&t.key),
                "--listen",
                "0.0.0.0:0",
            ],
            vec!["not a loopback address".into()],
        ),
    ];
    let data = t.path().join("data");
    for (what, flags, expect) in &cases {
        for cmd in ["serve", "check-config"] {
            let mut args = vec![cmd, "--data", s(&data)];
            if !flags.contains(&"--listen") {
                args.extend(["--listen", "127.0.0.1:0"]);
            }
            args.extend(flags.iter().copied());
            let (code, out) = run(&args);
            assert_eq!(code, Some(64), "{what} ({cmd}): {out}");
            for e in expect {
                assert!(
                    out.contains(e.as_str()),
                    "{what} ({cmd}): want {e:?} in {out}"
                );
            }
            assert!(!out.contains("panicked"), "{what}: {out}");
        }
    }
    assert!(!data.exists(), "no store opened for a bad config");
}

/// The agent's TLS files are read when its config is checked: a `ca_file` without a
/// certificate, or a client certificate that is not PEM, is a config error naming the file
/// (exit 64), by `check-config` and `run` alike, before anything is shipped.
#[test]
fn agent_tls_files_are_checked_with_its_config() {
    let t = setup();
    let (cert, key) = t.ca.client("payment-agent").write(t.path(), "client");
    let url = "https://127.0.0.1:9";
    let cases = [
        (
            format!("ca_file = \"{}\"", t.key.display()),
            format!(
                "invalid ca_file: ca_file {}: no certificate in it",
                t.key.display()
            ),
        ),
        (
            format!(
                "ca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
                t.ca_file.display(),
                key.display(),
                key.display()
            ),
            "invalid client_cert_file".to_owned(),
        ),
        (
            format!(
                "ca_file = \"{}\"\nclient_cert_file = \"{}\"",
                t.ca_file.display(),
                cert.display()
            ),
            "client_cert_file needs its key in client_key_file".to_owned(),
        ),
    ];
    for (extra, want) in &cases {
        let cfg = agent_config(t.path(), url, extra);
        for cmd in ["check-config", "run"] {
            let out = Command::new(bin("fjord-agent"))
                .args([cmd, "--config", s(&cfg)])
                .output()
                .expect("run fjord-agent");
            let text = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{cmd} {extra}: {text}");
            assert!(
                text.contains(want.as_str()),
                "{cmd}: want {want:?} in {text}"
            );
        }
    }
}
