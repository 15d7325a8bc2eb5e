//! Invariants that tie `deploy/` to the code: the Kubernetes manifests and the container build
//! file must agree with what the binaries read (config keys, paths, ports, env names), and
//! keep the security and resource settings the project promises. The schema check of every
//! object is `.ci/run`'s (kubernetes-validate); these tests check what a schema cannot: that
//! the config files load with the binaries' own loaders and that the pieces fit together.
//!
//! No process is started here; `tests/tests/pod.rs` runs the same files for real.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn k8s() -> PathBuf {
    repo().join("deploy/k8s")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every `*.yaml` under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(yaml_files(&p));
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn parse(p: &Path) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or("")
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// `matchLabels`-style map as owned pairs.
fn labels(y: &Yaml) -> BTreeMap<String, String> {
    y.as_hash()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (s(k).to_owned(), s(v).to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The Kubernetes objects (not kustomizations) of `deploy/k8s`, with their files.
struct Objects(Vec<(PathBuf, Yaml)>);

impl Objects {
    fn load() -> Objects {
        let mut out = Vec::new();
        for p in yaml_files(&k8s()) {
            for doc in parse(&p) {
                if s(&doc["kind"]) != "Kustomization" {
                    out.push((p.clone(), doc));
                }
            }
        }
        Objects(out)
    }

    fn get(&self, kind: &str, name: &str) -> &Yaml {
        self.0
            .iter()
            .map(|(_, y)| y)
            .find(|y| s(&y["kind"]) == kind && s(&y["metadata"]["name"]) == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s"))
    }
}

/// A container of a workload's pod template, init (sidecar) containers included.
fn container<'a>(workload: &'a Yaml, name: &str) -> &'a Yaml {
    let spec = &workload["spec"]["template"]["spec"];
    list(&spec["initContainers"])
        .iter()
        .chain(list(&spec["containers"]))
        .find(|c| s(&c["name"]) == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn all_containers(workload: &Yaml) -> Vec<&Yaml> {
    let spec = &workload["spec"]["template"]["spec"];
    list(&spec["initContainers"])
        .iter()
        .chain(list(&spec["containers"]))
        .collect()
}

/// The mount path of volume `volume` in container `c`.
fn mount(c: &Yaml, volume: &str) -> PathBuf {
    list(&c["volumeMounts"])
        .iter()
        .find(|m| s(&m["name"]) == volume)
        .map(|m| PathBuf::from(s(&m["mountPath"])))
        .unwrap_or_else(|| panic!("container {} does not mount {volume}", s(&c["name"])))
}

/// The volume mounted at `dir` in container `c`, and that mount.
fn volume_at<'a>(c: &'a Yaml, dir: &Path) -> &'a Yaml {
    list(&c["volumeMounts"])
        .iter()
        .find(|m| Path::new(s(&m["mountPath"])) == dir)
        .unwrap_or_else(|| {
            panic!(
                "container {} mounts nothing at {}",
                s(&c["name"]),
                dir.display()
            )
        })
}

fn pod_volume<'a>(workload: &'a Yaml, name: &str) -> &'a Yaml {
    list(&workload["spec"]["template"]["spec"]["volumes"])
        .iter()
        .find(|v| s(&v["name"]) == name)
        .unwrap_or_else(|| panic!("no pod volume {name}"))
}

/// A container port by number or name.
fn port(c: &Yaml, p: &Yaml) -> i64 {
    if let Some(n) = p.as_i64() {
        return n;
    }
    list(&c["ports"])
        .iter()
        .find(|cp| s(&cp["name"]) == s(p))
        .and_then(|cp| cp["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("container {} has no port {p:?}", s(&c["name"])))
}

/// The value after `--config` in a container's args.
fn config_arg(c: &Yaml) -> PathBuf {
    let args: Vec<&str> = list(&c["args"]).iter().map(s).collect();
    let i = args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config in args");
    PathBuf::from(args[i + 1])
}

/// `(kind key, generated object name) -> files` of every kustomization's generators.
fn generator_files(name: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for p in yaml_files(&k8s()) {
        for doc in parse(&p) {
            if s(&doc["kind"]) != "Kustomization" {
                continue;
            }
            for g in list(&doc["configMapGenerator"])
                .iter()
                .chain(list(&doc["secretGenerator"]))
            {
                if s(&g["name"]) != name {
                    continue;
                }
                for f in list(&g["files"]) {
                    let f = s(f);
                    let (key, file) = f.split_once('=').unwrap_or_else(|| {
                        (Path::new(f).file_name().unwrap().to_str().unwrap(), f)
                    });
                    out.push((key.to_owned(), p.parent().unwrap().join(file)));
                }
            }
        }
    }
    out
}

fn agent_toml() -> PathBuf {
    k8s().join("payment-service/agent.toml")
}

fn aggregator_toml() -> PathBuf {
    k8s().join("aggregator/aggregator.toml")
}

fn agent_file_config() -> fjord_agent::config::FileConfig {
    let p = agent_toml();
    fjord_agent::config::parse_file(&p.display().to_string(), &read(&p))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The directories `kubectl apply -k` is run on: deploy/k8s, and the HA overlay that replaces
/// its SQLite aggregator with replicas over PostgreSQL (docs/operations.md).
fn entry_points() -> [PathBuf; 2] {
    [k8s(), ha()]
}

fn ha() -> PathBuf {
    k8s().join("overlays/ha")
}

#[test]
fn every_file_is_a_named_object_reached_from_an_entry_point() {
    // Walk the kustomizations from each entry point, as `kubectl apply -k` does.
    let mut reached: Vec<PathBuf> = Vec::new();
    let mut todo = entry_points().to_vec();
    while let Some(dir) = todo.pop() {
        let kfile = dir.join("kustomization.yaml");
        assert!(
            kfile.exists(),
            "{} has no kustomization.yaml",
            dir.display()
        );
        reached.push(kfile.clone());
        let k = &parse(&kfile)[0];
        assert_eq!(s(&k["kind"]), "Kustomization", "{}", kfile.display());
        for r in list(&k["resources"]) {
            let p = dir.join(s(r));
            assert!(
                p.exists(),
                "{}: resource {} is missing",
                kfile.display(),
                s(r)
            );
            if p.is_dir() {
                todo.push(p);
            } else {
                reached.push(p);
            }
        }
        for g in list(&k["configMapGenerator"])
            .iter()
            .chain(list(&k["secretGenerator"]))
        {
            for f in list(&g["files"]) {
                let f = s(f);
                let file = f.split_once('=').map_or(f, |(_, f)| f);
                let p = dir.join(file);
                assert!(
                    p.is_file(),
                    "{}: generator file {f} is missing",
                    kfile.display()
                );
                reached.push(p);
            }
        }
    }
    for p in yaml_files(&k8s()) {
        let reached = reached
            .iter()
            .any(|r| r.canonicalize().ok() == p.canonicalize().ok());
        assert!(
            reached,
            "{} is not reached from deploy/k8s/kustomization.yaml or overlays/ha",
            p.display()
        );
        for doc in parse(&p) {
            if s(&doc["kind"]) == "Kustomization" {
                continue;
            }
            assert!(
                !s(&doc["apiVersion"]).is_empty(),
                "{}: no apiVersion",
                p.display()
            );
            assert!(
                !s(&doc["metadata"]["name"]).is_empty(),
                "{}: no name",
                p.display()
            );
            // Cluster-scoped kinds have no namespace.
            if !["Namespace", "ClusterIssuer"].contains(&s(&doc["kind"])) {
                assert!(
                    !s(&doc["metadata"]["namespace"]).is_empty(),
                    "{}: {} without a namespace",
                    p.display(),
                    s(&doc["kind"])
                );
            }
        }
    }
}

#[test]
fn team_rules_overlay_is_the_shipped_team_file() {
    let shipped = read(&repo().join("deploy/rules/payments.toml"));
    let generated = generator_files("fjord-rules");
    let overlay = generated
        .iter()
        .find(|(key, _)| key == "payments.toml")
        .expect("the payments overlay generates fjord-rules with payments.toml");
    assert_eq!(
        read(&overlay.1),
        shipped,
        "{} differs from deploy/rules/payments.toml: copy it over",
        overlay.1.display()
    );
}

#[test]
fn agent_config_paths_and_env_match_the_deployment() {
    let objs = Objects::load();
    let deploy = objs.get("Deployment", "payment-service");
    let agent = container(deploy, "fjord-agent");
    let app = container(deploy, "payment-service");
    let cfg = agent_file_config();

    // Config file: `--config` is the generated ConfigMap's key under its mount.
    let config_path = config_arg(agent);
    let config_mount = volume_at(agent, config_path.parent().unwrap());
    let config_volume = pod_volume(deploy, s(&config_mount["name"]));
    assert_eq!(s(&config_volume["configMap"]["name"]), "fjord-agent-config");
    assert!(generator_files("fjord-agent-config")
        .iter()
        .any(
            |(key, p)| Some(std::ffi::OsStr::new(key)) == config_path.file_name()
                && p == &agent_toml()
        ));

    // Logs: every glob's directory is the shared emptyDir, mounted in both containers at the
    // same path, read-only in the agent.
    let paths = cfg.paths.clone().expect("paths");
    assert!(!paths.is_empty());
    for glob in &paths {
        let dir = Path::new(glob).parent().expect("glob dir");
        assert!(
            !dir.to_string_lossy().contains('*'),
            "{glob}: keep globs in the file name"
        );
        let m = volume_at(agent, dir);
        assert_eq!(
            m["readOnly"].as_bool(),
            Some(true),
            "the agent's log mount is read-only"
        );
        let vol = s(&m["name"]);
        assert_eq!(mount(app, vol), dir, "the app writes where the agent reads");
        assert!(!pod_volume(deploy, vol)["emptyDir"].is_badvalue());
    }

    // State: its own writable emptyDir (lives as long as the pod: restarts resume).
    let state = cfg.state_dir.clone().expect("state_dir");
    let m = volume_at(agent, &state);
    assert_ne!(m["readOnly"].as_bool(), Some(true));
    assert!(!pod_volume(deploy, s(&m["name"]))["emptyDir"].is_badvalue());

    // Rules: the fjord-rules ConfigMap.
    let rules = cfg.rules_dir.clone().expect("rules_dir");
    let m = volume_at(agent, &rules);
    assert_eq!(
        s(&pod_volume(deploy, s(&m["name"]))["configMap"]["name"]),
        "fjord-rules"
    );

    // Token and hash key: files of the Secret, named by the generator's keys.
    let secret_keys: Vec<String> = generator_files("fjord-agent-secrets")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for file in [cfg.token_file.clone(), cfg.hash_key_file.clone()] {
        let file = file.expect("token_file and hash_key_file are set");
        let m = volume_at(agent, file.parent().unwrap());
        let secret = &pod_volume(deploy, s(&m["name"]))["secret"];
        assert_eq!(s(&secret["secretName"]), "fjord-agent-secrets");
        let key = file.file_name().unwrap().to_str().unwrap();
        assert!(secret_keys.iter().any(|k| k == key), "no Secret key {key}");
    }
    // With token_file set the agent never reads FJORD_TOKEN: it must not be in the env.
    let env: Vec<&str> = list(&agent["env"]).iter().map(|e| s(&e["name"])).collect();
    assert!(!env.contains(&"FJORD_TOKEN"));

    // `${VAR}` in labels and agent_id: every variable is in the agent's env, from the
    // downward API, and expands with the agent's own expander.
    let fake = |name: &str| -> Option<String> {
        let e = list(&agent["env"]).iter().find(|e| s(&e["name"]) == name)?;
        let field = s(&e["valueFrom"]["fieldRef"]["fieldPath"]);
        assert!(!field.is_empty(), "{name} is not from the downward API");
        Some(format!("<{field}>"))
    };
    let labels = cfg.labels.clone().expect("labels");
    let expanded: BTreeMap<&str, String> = labels
        .iter()
        .map(|(k, v)| {
            let e = fjord_agent::config::expand_env(v, fake)
                .unwrap_or_else(|e| panic!("label {k}: {e}"));
            (k.as_str(), e)
        })
        .collect();
    assert_eq!(expanded["pod"], "<metadata.name>");
    assert_eq!(expanded["namespace"], "<metadata.namespace>");
    assert_eq!(expanded["node"], "<spec.nodeName>");
    let id = cfg.agent_id.clone().expect("agent_id");
    assert_eq!(
        fjord_agent::config::expand_env(&id, fake).unwrap(),
        "<metadata.name>"
    );

    // Admin endpoint: on all interfaces (the kubelet probes the pod IP), on the probes' port.
    let admin: std::net::SocketAddr = cfg
        .admin_listen
        .clone()
        .expect("admin_listen")
        .parse()
        .unwrap();
    assert!(
        admin.ip().is_unspecified(),
        "admin_listen must not be loopback in a pod"
    );
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &agent[probe]["httpGet"];
        assert_eq!(s(&get["path"]), path, "{probe}");
        assert_eq!(
            port(agent, &get["port"]),
            i64::from(admin.port()),
            "{probe} port"
        );
    }
    let ann = &deploy["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(s(&ann["prometheus.io/port"]), admin.port().to_string());

    // Termination: the pod's grace covers the agent's flush grace plus a margin.
    let grace_ms =
        fjord_wire::clock::parse_duration(cfg.shutdown_grace.as_deref().unwrap_or("10s"))
            .expect("shutdown_grace")
            .as_millis();
    let tgps = deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        tgps as u128 * 1000 >= grace_ms + 5_000,
        "terminationGracePeriodSeconds {tgps} < shutdown_grace {grace_ms} ms + 5 s"
    );

    // The agent runs as a native sidecar, so it outlives the app's shutdown.
    assert_eq!(s(&agent["restartPolicy"]), "Always");
}

#[test]
fn agent_ships_to_the_aggregator_service_in_an_allowed_jurisdiction() {
    let objs = Objects::load();
    let cfg = agent_file_config();
    let svc = objs.get("Service", "fjord-aggregator");
    let url = cfg.url.clone().expect("url");
    let host = format!(
        "{}.{}.svc.cluster.local",
        s(&svc["metadata"]["name"]),
        s(&svc["metadata"]["namespace"])
    );
    let svc_port = list(&svc["spec"]["ports"])[0]["port"].as_i64().unwrap();
    assert_eq!(url, format!("https://{host}:{svc_port}"));
    assert_eq!(cfg.allowed_hosts.clone().unwrap_or_default(), vec![host]);

    let agg = fjord_aggregator::config::load(
        Some(&aggregator_toml()),
        fjord_aggregator::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The shipped config uses no deprecated key.
    assert!(agg.deprecations.is_empty(), "{:?}", agg.deprecations);
    let allowed = cfg
        .allowed_jurisdictions
        .clone()
        .unwrap_or_else(|| vec!["EEA".into()]);
    assert!(
        allowed.contains(&agg.info.jurisdiction),
        "{} not allowed",
        agg.info.jurisdiction
    );
    assert_ne!(agg.info.region, undeclared(), "declare the region");

    // The agent's token (the Secret's example value) is the aggregator's ingest token of the
    // agent's team.
    let token_file = generator_files("fjord-agent-secrets")
        .into_iter()
        .find(|(k, _)| k == "token")
        .expect("token key")
        .1;
    let hash = fjord_aggregator::server::auth::hash_token(&read(&token_file));
    let team = &cfg.labels.clone().unwrap()["team"];
    let tok = agg
        .tokens
        .iter()
        .find(|t| hex(&t.hash) == hash)
        .expect("the Secret's token has a [[token]] in aggregator.toml");
    assert_eq!(tok.team.as_deref(), Some(team.as_str()));
    assert_eq!(tok.role, fjord_aggregator::server::auth::Role::Ingest);
}

/// The value after `flag` in a container's args.
fn arg_value(c: &Yaml, flag: &str) -> PathBuf {
    let args: Vec<&str> = list(&c["args"]).iter().map(s).collect();
    let i = args
        .iter()
        .position(|a| *a == flag)
        .unwrap_or_else(|| panic!("{flag} in the args of {}", s(&c["name"])));
    PathBuf::from(args[i + 1])
}

/// The Secret mounted at `file`'s directory in container `c` of `workload`, and the file's
/// key in it.
fn secret_of<'a>(workload: &'a Yaml, c: &Yaml, file: &Path) -> (&'a str, String) {
    let m = volume_at(c, file.parent().unwrap());
    let name = s(&pod_volume(workload, s(&m["name"]))["secret"]["secretName"]);
    assert!(!name.is_empty(), "{} is not in a Secret", file.display());
    (
        name,
        file.file_name().unwrap().to_string_lossy().into_owned(),
    )
}

/// The cert-manager Certificate in `namespace` that writes the Secret `secret`.
fn certificate_for<'a>(objs: &'a Objects, namespace: &str, secret: &str) -> &'a Yaml {
    objs.0
        .iter()
        .map(|(_, y)| y)
        .find(|y| {
            s(&y["kind"]) == "Certificate"
                && s(&y["metadata"]["namespace"]) == namespace
                && s(&y["spec"]["secretName"]) == secret
        })
        .unwrap_or_else(|| panic!("no Certificate in {namespace} writes the Secret {secret}"))
}

/// HTTPS by default: the aggregator serves the Secret of its cert-manager Certificate (whose
/// names include the agent's url host), probed over HTTPS; the agent ships to an https url,
/// verifying with `ca.crt` of its own Certificate's Secret, and both Certificates come from
/// one CA issuer; no `allow_insecure_http` anywhere in the default.
#[test]
fn agent_and_aggregator_speak_https_with_certificates_of_one_ca() {
    let objs = Objects::load();
    let sts = objs.get("StatefulSet", "fjord-aggregator");
    let agg = container(sts, "fjord-aggregator");
    let agg_ns = s(&sts["metadata"]["namespace"]);
    let (cert_secret, cert_key) = secret_of(sts, agg, &arg_value(agg, "--tls-cert"));
    let (key_secret, key_key) = secret_of(sts, agg, &arg_value(agg, "--tls-key"));
    assert_eq!(cert_secret, key_secret);
    assert_eq!(
        (cert_key.as_str(), key_key.as_str()),
        ("tls.crt", "tls.key")
    );
    let served = certificate_for(&objs, agg_ns, cert_secret);
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(s(&agg[probe]["httpGet"]["scheme"]), "HTTPS", "{probe}");
    }

    let cfg = agent_file_config();
    assert!(
        cfg.allow_insecure_http.is_none(),
        "allow_insecure_http is gone from the default agent config"
    );
    assert!(!read(&agent_toml())
        .lines()
        .any(|l| l.trim_start().starts_with("allow_insecure_http")));
    let url = cfg.url.clone().expect("url");
    let host = url
        .strip_prefix("https://")
        .expect("the agent ships over https")
        .split(':')
        .next()
        .unwrap();
    let names: Vec<&str> = list(&served["spec"]["dnsNames"]).iter().map(s).collect();
    assert!(names.contains(&host), "{host} is not in {names:?}");

    let deploy = objs.get("Deployment", "payment-service");
    let agent = container(deploy, "fjord-agent");
    let ca_file = cfg.ca_file.clone().expect("ca_file");
    let (ca_secret, ca_key) = secret_of(deploy, agent, &ca_file);
    assert_eq!(ca_key, "ca.crt", "cert-manager's key of the CA bundle");
    let agent_cert = certificate_for(&objs, s(&deploy["metadata"]["namespace"]), ca_secret);

    // One CA: both from the same CA-type ClusterIssuer (namespaced Issuers cannot serve
    // two namespaces), whose CA Secret a CA Certificate writes in cert-manager's namespace.
    let issuer = &served["spec"]["issuerRef"];
    assert_eq!(s(&issuer["kind"]), "ClusterIssuer");
    assert_eq!(
        s(&agent_cert["spec"]["issuerRef"]["name"]),
        s(&issuer["name"])
    );
    assert_eq!(s(&agent_cert["spec"]["issuerRef"]["kind"]), "ClusterIssuer");
    let ca_issuer = objs.get("ClusterIssuer", s(&issuer["name"]));
    let ca_cert = certificate_for(
        &objs,
        "cert-manager",
        s(&ca_issuer["spec"]["ca"]["secretName"]),
    );
    assert_eq!(ca_cert["spec"]["isCA"].as_bool(), Some(true));
    let bootstrap = objs.get("ClusterIssuer", s(&ca_cert["spec"]["issuerRef"]["name"]));
    assert!(!bootstrap["spec"]["selfSigned"].is_badvalue());
}

fn undeclared() -> String {
    // The aggregator's default for an undeclared region (`fjord_wire::info::UNSET`).
    fjord_aggregator::config::load(None, fjord_aggregator::config::Overrides::default())
        .unwrap()
        .info
        .region
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn aggregator_config_matches_the_statefulset_service_and_network_policy() {
    let objs = Objects::load();
    let sts = objs.get("StatefulSet", "fjord-aggregator");
    let c = container(sts, "fjord-aggregator");
    let agg = fjord_aggregator::config::load(
        Some(&aggregator_toml()),
        fjord_aggregator::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Config file from the generated ConfigMap.
    let config_path = config_arg(c);
    let m = volume_at(c, config_path.parent().unwrap());
    assert_eq!(
        s(&pod_volume(sts, s(&m["name"]))["configMap"]["name"]),
        "fjord-aggregator-config"
    );
    assert!(generator_files("fjord-aggregator-config")
        .iter()
        .any(
            |(key, p)| Some(std::ffi::OsStr::new(key)) == config_path.file_name()
                && p == &aggregator_toml()
        ));

    // Data on the volume claim, at the config's data_dir.
    let claim = &list(&sts["spec"]["volumeClaimTemplates"])[0];
    assert_eq!(mount(c, s(&claim["metadata"]["name"])), agg.data_dir);
    assert_eq!(
        sts["spec"]["replicas"].as_i64(),
        Some(1),
        "one SQLite writer"
    );

    // Port: listen == containerPort == Service targetPort == NetworkPolicy port; probes on it.
    let listen = i64::from(agg.listen.port());
    assert!(agg.listen.ip().is_unspecified());
    let svc = objs.get("Service", "fjord-aggregator");
    let sp = &list(&svc["spec"]["ports"])[0];
    assert_eq!(port(c, &sp["targetPort"]), listen);
    let pod_labels = labels(&sts["spec"]["template"]["metadata"]["labels"]);
    for (k, v) in labels(&svc["spec"]["selector"]) {
        assert_eq!(
            pod_labels.get(&k),
            Some(&v),
            "the Service selects the aggregator pods"
        );
    }
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let get = &c[probe]["httpGet"];
        assert_eq!(
            s(&get["path"]),
            "/ready",
            "{probe}: the path that needs no token"
        );
        assert_eq!(port(c, &get["port"]), listen, "{probe}");
    }

    // NetworkPolicy: selects the aggregator pods, admits only pods carrying the agent label
    // (which payment-service's pods carry) on the listen port, and allows no egress.
    let np = objs.get("NetworkPolicy", "fjord-aggregator");
    let sts_labels = labels(&sts["spec"]["template"]["metadata"]["labels"]);
    for (k, v) in labels(&np["spec"]["podSelector"]["matchLabels"]) {
        assert_eq!(
            sts_labels.get(&k),
            Some(&v),
            "policy selects the aggregator pods"
        );
    }
    let types: Vec<&str> = list(&np["spec"]["policyTypes"]).iter().map(s).collect();
    assert!(types.contains(&"Ingress") && types.contains(&"Egress"));
    assert!(list(&np["spec"]["egress"]).is_empty(), "egress is denied");
    let app_labels = labels(
        &objs.get("Deployment", "payment-service")["spec"]["template"]["metadata"]["labels"],
    );
    let ingress = list(&np["spec"]["ingress"]);
    let rule_ports = |rule: &Yaml| -> Vec<i64> {
        list(&rule["ports"])
            .iter()
            .filter_map(|p| p["port"].as_i64())
            .collect()
    };
    // Two rules: agents on the listen port, Prometheus on the metrics port; each source is
    // selected by pod labels, and no rule opens another port.
    assert_eq!(ingress.len(), 2);
    for from in list(&ingress[0]["from"]) {
        let sel = labels(&from["podSelector"]["matchLabels"]);
        assert!(!sel.is_empty(), "every source is selected by pod labels");
        for (k, v) in &sel {
            assert_eq!(app_labels.get(k), Some(v), "the app's pods carry {k}={v}");
        }
    }
    assert_eq!(rule_ports(&ingress[0]), vec![listen]);
    let metrics = i64::from(agg.metrics_listen.expect("metrics_listen is set").port());
    assert!(agg.metrics_listen.is_some_and(|m| m.ip().is_unspecified()));
    assert_ne!(metrics, listen);
    for from in list(&ingress[1]["from"]) {
        assert!(!labels(&from["podSelector"]["matchLabels"]).is_empty());
    }
    assert_eq!(rule_ports(&ingress[1]), vec![metrics]);
}

/// The HA overlay runs the base's aggregator without state of its own: the same config but
/// for the store, the same image, arguments, ports and hardening as the StatefulSet, behind
/// the same Service; no volume for data; the store's DSN from a Secret; readiness on the
/// serving port's `/ready` (which asks the database) and liveness on the metrics port's
/// (which does not). deploy/k8s/ha_check.py checks the rest of the rendered overlay:
/// replicas, disruption budget, anti-affinity and the database tier.
#[test]
fn ha_overlay_runs_the_base_aggregator_without_state() {
    let load = |p: &Path| {
        fjord_aggregator::config::load(Some(p), fjord_aggregator::config::Overrides::default())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let base = load(&aggregator_toml());
    let mut ha_cfg = load(&ha().join("aggregator.toml"));
    assert!(ha_cfg.deprecations.is_empty(), "{:?}", ha_cfg.deprecations);
    let listen = i64::from(ha_cfg.listen.port());
    let metrics = i64::from(ha_cfg.metrics_listen.expect("metrics_listen").port());
    // The store comes from FJORD_STORE in the pod (a Secret), not from the file.
    ha_cfg.data_dir = base.data_dir.clone();
    ha_cfg.store = base.store.clone();
    assert_eq!(
        format!("{ha_cfg:?}"),
        format!("{base:?}"),
        "overlays/ha/aggregator.toml must say what aggregator/aggregator.toml says, but for \
         data_dir (and so the store)"
    );

    let objs = Objects::load();
    let sts = objs.get("StatefulSet", "fjord-aggregator");
    let dep = objs.get("Deployment", "fjord-aggregator");
    let base_c = container(sts, "fjord-aggregator");
    let c = container(dep, "fjord-aggregator");
    for key in [
        "image",
        "imagePullPolicy",
        "args",
        "ports",
        "securityContext",
    ] {
        assert_eq!(
            c[key], base_c[key],
            "{key}: the replicas run the StatefulSet's aggregator"
        );
    }
    let (pod_sts, pod_dep) = (
        &sts["spec"]["template"]["spec"],
        &dep["spec"]["template"]["spec"],
    );
    for key in [
        "securityContext",
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "terminationGracePeriodSeconds",
    ] {
        assert_eq!(pod_dep[key], pod_sts[key], "{key}");
    }
    let pod_labels = labels(&dep["spec"]["template"]["metadata"]["labels"]);
    for (k, v) in labels(&objs.get("Service", "fjord-aggregator")["spec"]["selector"]) {
        assert_eq!(
            pod_labels.get(&k),
            Some(&v),
            "the Service selects the replicas"
        );
    }

    // The config from the overlay's own generated ConfigMap, at the path the args name.
    let config_path = config_arg(c);
    let m = volume_at(c, config_path.parent().unwrap());
    assert_eq!(
        s(&pod_volume(dep, s(&m["name"]))["configMap"]["name"]),
        "fjord-aggregator-config"
    );
    let overlay = &parse(&ha().join("kustomization.yaml"))[0];
    let generator = list(&overlay["configMapGenerator"])
        .iter()
        .find(|g| s(&g["name"]) == "fjord-aggregator-config")
        .expect("the overlay replaces the aggregator's config");
    assert_eq!(s(&generator["behavior"]), "replace");
    let files: Vec<&str> = list(&generator["files"]).iter().map(s).collect();
    assert_eq!(
        files,
        vec![config_path.file_name().unwrap().to_str().unwrap()]
    );

    // No state: no volume claim, nothing mounted where SQLite would write.
    assert!(dep["spec"]["volumeClaimTemplates"].is_badvalue());
    for v in list(&pod_dep["volumes"]) {
        assert!(
            v["persistentVolumeClaim"].is_badvalue(),
            "volume {}",
            s(&v["name"])
        );
    }
    assert!(list(&c["volumeMounts"])
        .iter()
        .all(|m| Path::new(s(&m["mountPath"])) != base.data_dir));

    let store = list(&c["env"])
        .iter()
        .find(|e| s(&e["name"]) == "FJORD_STORE")
        .expect("FJORD_STORE names the store");
    assert!(store["value"].is_badvalue(), "the DSN holds a password");
    assert!(!s(&store["valueFrom"]["secretKeyRef"]["name"]).is_empty());

    for (probe, want) in [
        ("startupProbe", listen),
        ("readinessProbe", listen),
        ("livenessProbe", metrics),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(s(&get["path"]), "/ready", "{probe}");
        assert_eq!(port(c, &get["port"]), want, "{probe}");
    }
}

/// `kubectl apply -k deploy/k8s/overlays/ha` deploys everything `kubectl apply -k
/// deploy/k8s` does (kustomize cannot take the parent directory itself as a base), with the
/// same image tags.
#[test]
fn ha_overlay_takes_every_part_of_deploy_k8s() {
    let parts = |dir: &Path| -> (Vec<PathBuf>, Yaml) {
        let k = parse(&dir.join("kustomization.yaml")).remove(0);
        let resources = list(&k["resources"])
            .iter()
            .map(|r| dir.join(s(r)).canonicalize().expect("resource exists"))
            .collect();
        (resources, k["images"].clone())
    };
    let (top, top_images) = parts(&k8s());
    let (overlay, overlay_images) = parts(&ha());
    for r in top {
        assert!(overlay.contains(&r), "overlays/ha lacks {}", r.display());
    }
    assert!(!top_images.is_badvalue());
    assert_eq!(overlay_images, top_images, "the same image tags");
}

#[test]
fn pod_monitors_scrape_each_binarys_metrics_port() {
    let objs = Objects::load();
    let agg = fjord_aggregator::config::load(
        Some(&aggregator_toml()),
        fjord_aggregator::config::Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let agent = agent_file_config();
    let admin: std::net::SocketAddr = agent
        .admin_listen
        .as_deref()
        .expect("admin_listen in agent.toml")
        .parse()
        .expect("admin_listen is an address");
    let sts = objs.get("StatefulSet", "fjord-aggregator");
    let dep = objs.get("Deployment", "payment-service");
    for (monitor, workload, container_name, want_port) in [
        (
            "fjord-aggregator",
            sts,
            "fjord-aggregator",
            agg.metrics_listen.expect("metrics_listen").port(),
        ),
        ("fjord-agent", dep, "fjord-agent", admin.port()),
    ] {
        let pm = objs.get("PodMonitor", monitor);
        let pod_labels = labels(&workload["spec"]["template"]["metadata"]["labels"]);
        for (k, v) in labels(&pm["spec"]["selector"]["matchLabels"]) {
            assert_eq!(pod_labels.get(&k), Some(&v), "{monitor} selects the pods");
        }
        let endpoints = list(&pm["spec"]["podMetricsEndpoints"]);
        assert_eq!(endpoints.len(), 1, "{monitor}");
        assert_eq!(s(&endpoints[0]["path"]), "/metrics", "{monitor}");
        let c = container(workload, container_name);
        assert_eq!(
            port(c, &endpoints[0]["port"]),
            i64::from(want_port),
            "{monitor} scrapes the port /metrics is served on"
        );
    }
    // The agent's pods live in another namespace than the monitor.
    assert_eq!(
        objs.get("PodMonitor", "fjord-agent")["spec"]["namespaceSelector"]["any"].as_bool(),
        Some(true)
    );
}

#[test]
fn workloads_are_locked_down_and_have_limits() {
    let objs = Objects::load();
    for (kind, name, sa) in [
        ("Deployment", "payment-service", "payment-service"),
        ("StatefulSet", "fjord-aggregator", "fjord-aggregator"),
        // The HA overlay's replicas.
        ("Deployment", "fjord-aggregator", "fjord-aggregator"),
    ] {
        let w = objs.get(kind, name);
        let pod = &w["spec"]["template"]["spec"];
        assert_eq!(
            pod["automountServiceAccountToken"].as_bool(),
            Some(false),
            "{name}"
        );
        assert_eq!(s(&pod["serviceAccountName"]), sa);
        assert_eq!(
            objs.get("ServiceAccount", sa)["automountServiceAccountToken"].as_bool(),
            Some(false)
        );
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true), "{name}");
        assert!(
            psc["runAsUser"].as_i64().unwrap_or(0) > 0,
            "{name}: a non-root uid"
        );
        assert_eq!(
            s(&psc["seccompProfile"]["type"]),
            "RuntimeDefault",
            "{name}"
        );
        for c in all_containers(w) {
            let cn = s(&c["name"]);
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{cn}");
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{cn}"
            );
            assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "{cn}");
            let drop: Vec<&str> = list(&sc["capabilities"]["drop"]).iter().map(s).collect();
            assert_eq!(drop, vec!["ALL"], "{cn}");
            assert!(sc["capabilities"]["add"].is_badvalue(), "{cn}");
            for part in ["requests", "limits"] {
                for r in ["cpu", "memory"] {
                    assert!(
                        !s(&c["resources"][part][r]).is_empty(),
                        "{cn}: resources.{part}.{r}"
                    );
                }
            }
        }
        let n = objs.get("Namespace", s(&w["metadata"]["namespace"]));
        assert_eq!(
            s(&n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]),
            "restricted",
            "{name}: its namespace enforces the restricted Pod Security profile"
        );
    }
    // The sidecar's budget, as the issue states it.
    let agent = container(objs.get("Deployment", "payment-service"), "fjord-agent");
    for part in ["requests", "limits"] {
        assert_eq!(s(&agent["resources"][part]["cpu"]), "100m");
        assert_eq!(s(&agent["resources"][part]["memory"]), "128Mi");
    }
}

/// One stage of a Dockerfile: its `FROM` line and instructions.
struct Stage {
    from: String,
    name: String,
    lines: Vec<String>,
}

fn dockerfile_stages() -> Vec<Stage> {
    let text = read(&repo().join("deploy/docker/Dockerfile"));
    // Join continuation lines; drop comments.
    let mut joined = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('#') {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(t);
            if !cur.trim().is_empty() {
                joined.push(std::mem::take(&mut cur));
            }
            cur.clear();
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for l in joined {
        let mut words = l.split_whitespace();
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            let w: Vec<&str> = words.collect();
            stages.push(Stage {
                from: w[0].to_owned(),
                name: match w.iter().position(|x| x.eq_ignore_ascii_case("AS")) {
                    Some(i) => w[i + 1].to_owned(),
                    None => String::new(),
                },
                lines: Vec::new(),
            });
        } else if let Some(st) = stages.last_mut() {
            st.lines.push(l);
        }
    }
    stages
}

fn instr<'a>(st: &'a Stage, name: &str) -> Vec<&'a str> {
    st.lines
        .iter()
        .filter_map(|l| {
            let (k, rest) = l.split_once(' ')?;
            k.eq_ignore_ascii_case(name).then_some(rest.trim())
        })
        .collect()
}

fn json_words(v: &str) -> Vec<String> {
    serde_json::from_str(v).unwrap_or_else(|e| panic!("{v}: exec form (JSON) expected: {e}"))
}

#[test]
fn dockerfile_builds_static_non_root_images_that_match_the_manifests() {
    let stages = dockerfile_stages();
    let build = &stages[0];
    assert!(
        build.from.contains("alpine"),
        "musl builder: {}",
        build.from
    );
    let run = instr(build, "RUN").join(" ");
    assert!(run.contains("cargo build --release --locked"), "{run}");

    let objs = Objects::load();
    let targets = [
        ("fjord-agent", objs.get("Deployment", "payment-service")),
        (
            "fjord-aggregator",
            objs.get("StatefulSet", "fjord-aggregator"),
        ),
    ];
    for (bin, w) in targets {
        let c = container(w, bin);
        let st = stages
            .iter()
            .find(|st| st.name == bin)
            .unwrap_or_else(|| panic!("no stage {bin}"));
        assert_eq!(st.from, "scratch", "{bin}: an empty base image");
        // The binary exists as a workspace binary.
        let cargo = read(
            &repo()
                .join(bin.trim_start_matches("fjord-"))
                .join("Cargo.toml"),
        );
        assert!(
            cargo.contains(&format!("name = \"{bin}\"")),
            "{bin} is a [[bin]]"
        );
        let users = instr(st, "USER");
        assert_eq!(users.len(), 1, "{bin}: one USER");
        let uid: u32 = users[0]
            .split(':')
            .next()
            .unwrap()
            .parse()
            .expect("a numeric uid (scratch has no /etc/passwd)");
        assert_ne!(uid, 0, "{bin}: non-root");
        // The manifests run the same uid.
        let psc = &w["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(
            psc["runAsUser"].as_i64(),
            Some(i64::from(uid)),
            "{bin}: same uid"
        );
        let ep = json_words(instr(st, "ENTRYPOINT")[0]);
        assert_eq!(ep, vec![format!("/{bin}")]);
        // A static binary runs in the empty image; a dynamic one would fail the build here.
        assert!(instr(st, "RUN").contains(&format!("[\"/{bin}\", \"--version\"]").as_str()));
        // The image's default command reads the config where the manifests mount it; the
        // manifest may add flags after it (the aggregator's --tls-cert/--tls-key, which name
        // files only a Kubernetes Secret provides).
        let cmd = json_words(instr(st, "CMD")[0]);
        let args: Vec<String> = list(&c["args"]).iter().map(|a| s(a).to_owned()).collect();
        assert!(
            args.starts_with(&cmd),
            "{bin}: the manifest's args {args:?} start with CMD {cmd:?}"
        );
        assert_eq!(
            s(&c["image"]),
            bin,
            "{bin}: the image name the kustomization retags"
        );
    }
    let ignore = read(&repo().join("deploy/docker/Dockerfile.dockerignore"));
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "target/ stays out of the context"
    );
}

/// The series names a Prometheus scraping the agent's `/metrics` can see: every sample name,
/// and for families with no sample yet (labelled families before their first label set) the
/// names their `# TYPE` implies (a counter `x` is `x_total`, a histogram `x_bucket`, `x_sum`,
/// `x_count`, …). A base name without its suffix (`x` of a counter) is not one of them.
fn exposed_series(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let (Some(name), Some(kind)) = (w.next(), w.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                "stateset" | "gauge" | "unknown" => &[""],
                other => panic!("unexpected metric type {other} in {line}"),
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// The `fjord_agent_*` names used in `text` (a word `fjord_agent_` alone, as in prose about
/// "every `fjord_agent_*` name", is skipped).
fn agent_metric_names(text: &str) -> Vec<String> {
    text.match_indices("fjord_agent_")
        .map(|(i, p)| {
            let rest: String = text[i + p.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest
        })
        .filter(|rest| !rest.is_empty())
        .map(|rest| format!("fjord_agent_{rest}"))
        .collect()
}

/// The Prometheus rules on the operations page and in any rules file under deploy/.
fn alert_rule_texts() -> Vec<(PathBuf, String)> {
    let mut out = vec![(
        repo().join("docs/operations.md"),
        read(&repo().join("docs/operations.md")),
    )];
    for f in yaml_files(&repo().join("deploy")) {
        let text = read(&f);
        if text.contains("fjord_agent_") {
            out.push((f, text));
        }
    }
    out
}

#[test]
fn alert_rules_use_metrics_the_agent_exports() {
    // The exposition the admin endpoint serves, from the agent's own registry.
    let exposed = exposed_series(&fjord_agent::metrics::Metrics::new().encode());
    assert!(
        exposed.contains("fjord_agent_records_acked_total"),
        "{exposed:?}"
    );
    assert!(exposed.contains("fjord_agent_lag_bytes"), "{exposed:?}");
    // A wrong suffix is caught: the check below would fail on these.
    for wrong in [
        "fjord_agent_lag_bytes_total",
        "fjord_agent_records_acked",
        "fjord_agent_residency_blocked_total",
    ] {
        assert!(
            !exposed.contains(wrong),
            "{wrong} must not count as exposed"
        );
    }

    let mut seen = 0;
    for (file, text) in alert_rule_texts() {
        for name in agent_metric_names(&text) {
            assert!(
                exposed.contains(&name),
                "{} uses {name}, which the agent's /metrics does not expose; it exposes {exposed:?}",
                file.display()
            );
            seen += 1;
        }
    }
    let ops = read(&repo().join("docs/operations.md"));
    for needed in [
        "fjord_agent_lag_bytes",
        "fjord_agent_residency_blocked",
        "fjord_agent_batches_dead_lettered_total",
        "fjord_agent_last_ack_timestamp_seconds",
    ] {
        assert!(ops.contains(needed), "an alert on {needed}");
    }
    assert!(seen >= 4);
}

#[test]
fn docs_use_metrics_the_aggregator_exports() {
    let metrics = fjord_aggregator::server::metrics::Metrics::new(
        ["payments"],
        std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
        1,
        std::sync::Arc::default(),
    );
    let exposed = exposed_series(&metrics.encode());
    assert!(
        exposed.contains("fjord_aggregator_pushes_total"),
        "{exposed:?}"
    );
    let ops = read(&repo().join("docs/operations.md"));
    let names: Vec<String> = ops
        .match_indices("fjord_aggregator_")
        .map(|(i, p)| {
            let rest: String = ops[i + p.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            format!("fjord_aggregator_{rest}")
        })
        .filter(|n| n != "fjord_aggregator_")
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        // The table names a histogram by its `_bucket` and lists `_sum`, `_count` apart.
        assert!(
            exposed.contains(&name),
            "docs/operations.md uses {name}, which the aggregator's /metrics does not expose; it exposes {exposed:?}"
        );
    }
}
