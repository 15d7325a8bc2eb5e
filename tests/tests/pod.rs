//! The payment-service pod of `deploy/k8s`, simulated with real processes: an app writer, the
//! agent and the aggregator, each a separate process, laid out as the manifests lay them out.
//!
//! Every volume mount of the agent container becomes a temp directory filled the way the
//! kubelet fills it (the ConfigMaps' files, the rules with the `..data` symlink layout, the
//! Secret's files with mode 0440, empty emptyDirs); the manifests' config files are used with
//! only the mount paths, the Service address and the admin port rewritten to this machine; the
//! agent's environment is the container's `env` with the downward-API values filled in. The
//! aggregator runs the manifest's `aggregator.toml` (tokens and all) over TLS, as the
//! StatefulSet runs it; cert-manager's Secrets are filled from a CA made for the test (the
//! agent's `ca.crt`, and the aggregator's certificate for 127.0.0.1).
//!
//! The app container is the `fjord-writer` process (numbered lines, one write each, at
//! 1,000 lines/s), writing to the app container's mount of the shared log volume.
//!
//! It checks that the pod works as deployed (every line stored once, under the per-pod
//! labels, e-mails pseudonymised by the team's rules, a clean SIGTERM within the pod's grace
//! period) and measures the agent's CPU at 1,000 lines/s against the sidecar's 100m budget,
//! with the agent shown to keep up during the measurement (so that a lagging agent cannot
//! report less CPU), and its peak RSS against the manifest's memory limit.
//! Release figures: `FJORD_E2E_BIN_DIR=target/release` (docs/benchmarks.md).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fjord_e2e::{
    agent_metric, bin, cpu_seconds, free_port, http_get, peak_rss_kib, test_dir, wait_for, writer,
    Aggregator, Proc,
};
use yaml_rust2::{Yaml, YamlLoader};

/// The sidecar's line rate in this test, lines per second.
const RATE: u64 = 1000;
/// The measurement window; `FJORD_POD_SECS` overrides it.
const DEFAULT_SECS: u64 = 20;
/// The CPU the agent may use at [`RATE`] in this test, millicores. The pod's limit is 100m;
/// debug binaries (the default of `cargo test`) are allowed more, release binaries
/// (`FJORD_E2E_BIN_DIR`) must stay well under the limit.
const MAX_MILLICORES_DEBUG: f64 = 300.0;
const MAX_MILLICORES_RELEASE: f64 = 50.0;
/// How far behind the writer the agent's acknowledgements may be at the end of the window,
/// as time at [`RATE`]: the default linger (250 ms) and poll interval (250 ms), a send and
/// its acknowledgement, and room for a loaded two-core machine.
const KEEP_UP_MARGIN: Duration = Duration::from_secs(2);

/// The downward-API values of the simulated pod.
const POD_NAME: &str = "payment-service-7d9c8b6f5-x2x4q";
const POD_NAMESPACE: &str = "shop";
const NODE_NAME: &str = "node-eu-north-1a";

/// An admin token added to the test's copy of the aggregator config, to read back.
const ADMIN_TOKEN: &str = "fjd_pod_test_admin_token_000000000000000000000000";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn yaml(rel: &str) -> Vec<Yaml> {
    let p = repo().join(rel);
    YamlLoader::load_from_str(&std::fs::read_to_string(&p).expect("read manifest"))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or("")
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// `(key, file)` of the generator `name` in the kustomization of `dir`.
fn generated(dir: &str, name: &str) -> Vec<(String, PathBuf)> {
    let k = &yaml(&format!("{dir}/kustomization.yaml"))[0];
    let mut out = Vec::new();
    for g in list(&k["configMapGenerator"])
        .iter()
        .chain(list(&k["secretGenerator"]))
        .filter(|g| s(&g["name"]) == name)
    {
        for f in list(&g["files"]) {
            let f = s(f);
            let (key, file) = match f.split_once('=') {
                Some((k, f)) => (k.to_owned(), f),
                None => (
                    Path::new(f)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    f,
                ),
            };
            out.push((key, repo().join(dir).join(file)));
        }
    }
    out
}

/// Writes `files` into `dir` the way the kubelet projects a ConfigMap or Secret: the data in
/// a timestamped directory, `..data` pointing at it, and each key a symlink through `..data`.
fn project(dir: &Path, files: &[(String, PathBuf)], mode: u32) {
    let data = dir.join("..2026_11_26_10_00_00.000000001");
    std::fs::create_dir_all(&data).expect("projection dir");
    for (key, src) in files {
        let dst = data.join(key);
        std::fs::copy(src, &dst).expect("project file");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).expect("chmod");
        std::os::unix::fs::symlink(Path::new("..data").join(key), dir.join(key))
            .expect("key symlink");
    }
    std::os::unix::fs::symlink(data.file_name().unwrap(), dir.join("..data"))
        .expect("..data symlink");
}

/// The simulated pod: where each of the agent and app containers' mounts is on this machine.
struct Pod {
    mounts: Vec<(PathBuf, PathBuf)>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// The agent container's memory limit, bytes.
    memory_limit: u64,
    /// The app container's mounts (the same volume directories as the agent's).
    app_mounts: Vec<(PathBuf, PathBuf)>,
    /// The app's log file, in the app container.
    app_log: PathBuf,
}

/// The host path of `in_container` through `mounts` (`(mount path, host dir)`).
fn host_path(mounts: &[(PathBuf, PathBuf)], in_container: &Path) -> PathBuf {
    mounts
        .iter()
        .filter_map(|(m, h)| in_container.strip_prefix(m).ok().map(|rest| h.join(rest)))
        .next()
        .unwrap_or_else(|| panic!("{} is on no mount", in_container.display()))
}

impl Pod {
    /// The host path of a path inside the agent container.
    fn host(&self, in_container: &Path) -> PathBuf {
        host_path(&self.mounts, in_container)
    }

    /// The host path of a path inside the app container.
    fn app_host(&self, in_container: &Path) -> PathBuf {
        host_path(&self.app_mounts, in_container)
    }
}

/// A Kubernetes memory quantity (`128Mi`, `1Gi`, `500M`, bytes) in bytes.
fn memory_bytes(q: &str) -> u64 {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    let (n, unit) = units
        .iter()
        .find_map(|(u, f)| q.strip_suffix(u).map(|n| (n, *f)))
        .unwrap_or((q, 1));
    n.parse::<u64>()
        .unwrap_or_else(|e| panic!("memory quantity {q:?}: {e}"))
        * unit
}

/// Lays out the agent container of `deploy/k8s/payment-service/deployment.yaml` under `dir`;
/// a Secret that no kustomization generates is cert-manager's, filled from `ca` as
/// cert-manager fills it (`ca.crt`, `tls.crt`, `tls.key`).
fn lay_out(dir: &Path, ca: &fjord_e2e::certs::Ca) -> Pod {
    let deploy = &yaml("deploy/k8s/payment-service/deployment.yaml")[0];
    let spec = &deploy["spec"]["template"]["spec"];
    let agent = list(&spec["initContainers"])
        .iter()
        .find(|c| s(&c["name"]) == "fjord-agent")
        .expect("fjord-agent sidecar");
    let mut mounts = Vec::new();
    for m in list(&agent["volumeMounts"]) {
        let name = s(&m["name"]);
        let host = dir.join("volumes").join(name);
        std::fs::create_dir_all(&host).expect("volume dir");
        let vol = list(&spec["volumes"])
            .iter()
            .find(|v| s(&v["name"]) == name)
            .expect("pod volume");
        if !vol["configMap"].is_badvalue() {
            let cm = s(&vol["configMap"]["name"]);
            // The team overlay replaces the base's rules; take each ConfigMap from the
            // kustomization that has the final word on it.
            let files = match cm {
                "fjord-rules" => generated("deploy/k8s/overlays/payments", cm),
                _ => generated("deploy/k8s/payment-service", cm),
            };
            if cm != "fjord-agent-config" {
                project(&host, &files, 0o644);
            }
        } else if !vol["secret"].is_badvalue() {
            let name = s(&vol["secret"]["secretName"]);
            let mut files = generated("deploy/k8s/overlays/payments", name);
            if files.is_empty() {
                assert_eq!(
                    name, "fjord-agent-tls",
                    "only cert-manager's Secret is not generated"
                );
                let src = dir.join("cert-manager").join(name);
                std::fs::create_dir_all(&src).expect("secret source dir");
                let leaf = ca.client("payment-service.shop.fjord-agent");
                for (key, text) in [
                    ("ca.crt", &ca.cert_pem),
                    ("tls.crt", &leaf.cert_pem),
                    ("tls.key", &leaf.key_pem),
                ] {
                    std::fs::write(src.join(key), text).expect("secret file");
                    files.push((key.to_owned(), src.join(key)));
                }
            }
            project(&host, &files, 0o440);
        }
        mounts.push((PathBuf::from(s(&m["mountPath"])), host));
    }
    let field = |f: &str| match f {
        "metadata.name" => POD_NAME,
        "metadata.namespace" => POD_NAMESPACE,
        "spec.nodeName" => NODE_NAME,
        other => panic!("no simulated value for fieldRef {other}"),
    };
    let mut env = vec![("HOSTNAME".to_owned(), POD_NAME.to_owned())];
    for e in list(&agent["env"]) {
        let v = match e["value"].as_str() {
            Some(v) => v.to_owned(),
            None => field(s(&e["valueFrom"]["fieldRef"]["fieldPath"])).to_owned(),
        };
        env.push((s(&e["name"]).to_owned(), v));
    }
    let args = list(&agent["args"])
        .iter()
        .map(|a| s(a).to_owned())
        .collect();
    let memory_limit = memory_bytes(s(&agent["resources"]["limits"]["memory"]));

    // The app container: its mounts of the same volumes, and the file its command appends to.
    let app = list(&spec["containers"])
        .iter()
        .find(|c| s(&c["name"]) == "payment-service")
        .expect("payment-service container");
    let app_mounts: Vec<(PathBuf, PathBuf)> = list(&app["volumeMounts"])
        .iter()
        .map(|m| {
            (
                PathBuf::from(s(&m["mountPath"])),
                dir.join("volumes").join(s(&m["name"])),
            )
        })
        .collect();
    let logs = list(&app["volumeMounts"])
        .iter()
        .find(|m| s(&m["name"]) == "app-logs")
        .map(|m| PathBuf::from(s(&m["mountPath"])))
        .expect("the app mounts app-logs");
    let app_log = logs.join("app.log");
    let command: Vec<&str> = list(&app["command"]).iter().map(s).collect();
    assert!(
        command
            .iter()
            .any(|c| c.contains(&format!(">> {}", app_log.display()))),
        "the manifest's app appends to {}: {command:?}",
        app_log.display()
    );
    Pod {
        mounts,
        env,
        args,
        memory_limit,
        app_mounts,
        app_log,
    }
}

/// The app container: `fjord-writer` appending to the app's log through the app container's
/// mount, at [`RATE`], keeping its count in `dir/writer.progress`.
struct App {
    proc: Proc,
    progress: PathBuf,
}

impl App {
    fn start(dir: &Path, pod: &Pod) -> App {
        let progress = dir.join("writer.progress");
        let log = std::fs::File::create(dir.join("writer.log")).expect("log file");
        let child = Command::new(bin("fjord-writer"))
            .arg(pod.app_host(&pod.app_log))
            .args(["--rate", &RATE.to_string()])
            .arg("--progress")
            .arg(&progress)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn fjord-writer");
        App {
            proc: Proc {
                child,
                name: "fjord-writer",
            },
            progress,
        }
    }

    /// Lines written so far (at most the writer's progress interval stale).
    fn written(&self) -> u64 {
        std::fs::read_to_string(&self.progress)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM; returns the count the writer printed at exit (sequence numbers `0..n`).
    fn stop(mut self) -> u64 {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.proc.pid(), libc::SIGTERM) };
        let mut out = String::new();
        std::io::Read::read_to_string(
            self.proc.child.stdout.as_mut().expect("writer stdout"),
            &mut out,
        )
        .expect("read writer stdout");
        let status = self.proc.child.wait().expect("wait for fjord-writer");
        assert!(status.success(), "fjord-writer: {status}");
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("fjord-writer printed {out:?}: {e}"))
    }
}

/// The manifest's agent.toml with the mount paths, the Service address and the admin port
/// rewritten for this machine; written where the pod's `--config` points.
fn write_agent_config(pod: &Pod, agg_addr: &str) -> PathBuf {
    let src = repo().join("deploy/k8s/payment-service/agent.toml");
    let mut text = std::fs::read_to_string(&src).expect("agent.toml");
    let cfg = fjord_agent::config::parse_file("agent.toml", &text).expect("agent.toml parses");
    let url = cfg.url.expect("url");
    let host = url
        .trim_start_matches("https://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    text = text.replace(&url, &format!("https://{agg_addr}"));
    text = text.replace(&format!("\"{host}\""), "\"127.0.0.1\"");
    let admin = cfg.admin_listen.expect("admin_listen");
    text = text.replace(&admin, &format!("127.0.0.1:{}", free_port()));
    // Longest mount first, so that a nested mount wins over its parent.
    let mut mounts = pod.mounts.clone();
    mounts.sort_by_key(|(m, _)| std::cmp::Reverse(m.as_os_str().len()));
    for (m, h) in &mounts {
        text = text.replace(&format!("\"{}", m.display()), &format!("\"{}", h.display()));
    }
    let i = pod
        .args
        .iter()
        .position(|a| a == "--config")
        .expect("--config");
    let path = pod.host(Path::new(&pod.args[i + 1]));
    std::fs::write(&path, text).expect("write agent config");
    path
}

/// Starts the agent with the pod's args (the config path mapped) and environment.
fn start_agent_in_pod(dir: &Path, pod: &Pod, config: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("agent.log")).expect("log file");
    let args: Vec<String> = pod
        .args
        .iter()
        .map(|a| {
            if a.starts_with('/') {
                config.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let child = Command::new(bin("fjord-agent"))
        .args(&args)
        .env_remove("FJORD_TOKEN")
        .envs(pod.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn fjord-agent");
    Proc {
        child,
        name: "fjord-agent",
    }
}

/// The manifest's aggregator.toml plus an admin token to read back with; its metrics
/// listener moves to a free loopback port, as the test runs beside others on one host.
fn write_aggregator_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("deploy/k8s/aggregator/aggregator.toml"))
        .expect("aggregator.toml");
    let mut text = text.replace(
        "metrics_listen = \"0.0.0.0:9811\"",
        &format!("metrics_listen = \"127.0.0.1:{}\"", fjord_e2e::free_port()),
    );
    text.push_str(&format!(
        "\n[[token]]\nname = \"pod-test-admin\"\nsha256 = \"{}\"\nrole = \"admin\"\n",
        fjord_aggregator::server::auth::hash_token(ADMIN_TOKEN)
    ));
    let p = dir.join("aggregator.toml");
    std::fs::write(&p, text).expect("write aggregator config");
    p
}

fn query(agg: &Aggregator, logql: &str, limit: usize) -> Vec<serde_json::Value> {
    let out = Command::new(bin("fjord-aggregator"))
        .args([
            "query",
            logql,
            "--since",
            "24h",
            "--forward",
            "--output",
            "jsonl",
        ])
        .args(["--limit", &limit.to_string(), "--url", &agg.url()])
        .args(agg.tls.iter().flat_map(|t| t.cli_args()))
        .env("FJORD_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run fjord-aggregator query");
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl row"))
        .collect()
}

#[test]
fn payment_pod_ships_everything_within_the_sidecar_budget() {
    let dir = test_dir();
    let dir = dir.path();
    let ca = fjord_e2e::certs::Ca::new("fjord CA");
    let pod = lay_out(dir, &ca);

    // The StatefulSet's TLS flags, with a serving certificate for this machine.
    let ca_file = ca.write(&dir.join("ca.pem"));
    let (cert, key) = ca.server().write(dir, "aggregator-tls");
    let agg_config = write_aggregator_config(dir);
    let utf8 = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let agg = Aggregator::start_tls(
        dir,
        &[
            "--config",
            &utf8(&agg_config),
            "--tls-cert",
            &utf8(&cert),
            "--tls-key",
            &utf8(&key),
        ],
        fjord_e2e::tls::ClientTls::ca(ca_file),
    );
    let config = write_agent_config(&pod, &agg.addr.to_string());

    // JSON events with a customer e-mail, which the payments rules pseudonymise; written,
    // as the app's log, through the app container's mount.
    let events = pod.app_host(&pod.app_log.with_file_name("events.log"));
    let mut ev = String::new();
    for i in 0..10 {
        ev.push_str(&format!(
            "{{\"event\":\"paid\",\"order\":{i},\"customer\":{{\"email\":\"kari.nordmann@example.no\",\"tier\":\"gold\"}}}}\n"
        ));
    }
    std::fs::write(&events, ev).expect("events.log");

    let agent = start_agent_in_pod(dir, &pod, &config);
    let admin = fjord_e2e::admin_addr(&config);
    wait_for("agent /readyz", Duration::from_secs(30), || {
        matches!(http_get(admin, "/readyz"), Ok((200, _)))
    });

    let app = App::start(dir, &pod);
    // Warm-up: the first batches acknowledged, so start-up work is not in the window.
    wait_for("first ack", Duration::from_secs(30), || {
        agent_metric(&config, "fjord_agent_records_acked_total").unwrap_or(0.0) > 0.0
    });
    let secs = std::env::var("FJORD_POD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let cpu0 = cpu_seconds(agent.pid()).expect("agent cpu");
    let (t0, w0) = (Instant::now(), app.written());
    // A measurement window: the rate is the point, so this is a timed wait, not a poll.
    std::thread::sleep(Duration::from_secs(secs));
    let cpu1 = cpu_seconds(agent.pid()).expect("agent cpu");
    let (wall, w1) = (t0.elapsed().as_secs_f64(), app.written());
    let acked1 = agent_metric(&config, "fjord_agent_records_acked_total").unwrap_or(0.0);
    let written = app.stop();
    let rss_kib = peak_rss_kib(agent.pid()).expect("agent peak RSS");
    let rss_mib = rss_kib as f64 / 1024.0;
    let limit_mib = pod.memory_limit as f64 / (1024.0 * 1024.0);
    let millicores = (cpu1 - cpu0) / wall * 1000.0;
    let rate = (w1 - w0) as f64 / wall;
    // Lines written by the end of the window (and the 10 events) not yet acknowledged.
    let behind = (w1 + 10) as f64 - acked1;
    let release = std::env::var_os("FJORD_E2E_BIN_DIR").is_some();
    eprintln!(
        "pod: agent at {rate:.0} lines/s for {wall:.1} s: {millicores:.1} millicores ({} binaries), \
         {behind:.0} lines unacknowledged at the end, peak RSS {rss_mib:.1} MiB (limit {limit_mib:.0} MiB)",
        if release { "FJORD_E2E_BIN_DIR" } else { "debug" }
    );
    // The CPU figure counts only if the agent kept up: a lagging agent does less work.
    let margin = KEEP_UP_MARGIN.as_secs_f64() * RATE as f64;
    assert!(
        behind <= margin,
        "the agent fell behind: {behind:.0} lines unacknowledged at the end of the window (at most {margin:.0})"
    );
    assert!(
        rss_kib * 1024 < pod.memory_limit,
        "agent peak RSS {rss_mib:.1} MiB is over the manifest's limit {limit_mib:.0} MiB"
    );

    // Everything the app wrote is stored once, under the pod's labels.
    let expected: BTreeSet<u64> = (0..written).collect();
    let total = written + 10;
    wait_for("every line acknowledged", Duration::from_secs(60), || {
        agent_metric(&config, "fjord_agent_records_acked_total").unwrap_or(0.0) >= total as f64
    });
    let selector = format!(
        r#"{{team="payments",pod="{POD_NAME}",namespace="{POD_NAMESPACE}",node="{NODE_NAME}"}}"#
    );
    let rows = query(&agg, &selector, 100_000);
    let seqs: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["line"].as_str().and_then(writer::seq_of))
        .collect();
    writer::assert_exactly_once(&seqs, &expected);
    let labels: BTreeMap<String, String> =
        serde_json::from_value(rows[0]["labels"].clone()).expect("labels");
    assert_eq!(
        labels.get("container").map(String::as_str),
        Some("payment-service")
    );

    // The team's rules from the ConfigMap and the key from the Secret are in force.
    let ev = query(&agg, &format!(r#"{selector} |= "paid""#), 100);
    assert_eq!(ev.len(), 10);
    for r in &ev {
        let line = r["line"].as_str().expect("line");
        assert!(
            !line.contains("kari.nordmann"),
            "e-mail left the pod: {line}"
        );
        assert!(line.contains("[HASH:customer.email:"), "{line}");
    }

    // SIGTERM: a clean exit well within the pod's terminationGracePeriodSeconds.
    let t = Instant::now();
    assert_eq!(agent.terminate(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    let max = if release {
        MAX_MILLICORES_RELEASE
    } else {
        MAX_MILLICORES_DEBUG
    };
    assert!(
        millicores < max,
        "agent used {millicores:.1} millicores at {rate:.0} lines/s (budget here {max})"
    );
    assert!(
        rate > RATE as f64 * 0.9,
        "the writer kept its rate: {rate:.0}/s"
    );
}
