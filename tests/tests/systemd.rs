//! The VM deployment files agree with each other and keep their hardening: the systemd unit
//! (deploy/systemd/fjord-aggregator.service) has every sandboxing key with the value the
//! operations guide promises, its data directory is the default config's `data_dir`, and the
//! default config of the .deb (deploy/deb/aggregator.toml) passes the aggregator's own
//! loader and is safe as shipped (loopback only). `systemd-analyze verify` and the package
//! itself are checked by deploy/deb/check.sh in CI.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `[Service]` keys of the unit; a repeated key keeps every value, in order.
fn service_keys() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo().join("deploy/systemd/fjord-aggregator.service"))
        .expect("read the unit");
    let mut section = String::new();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_owned();
            continue;
        }
        if section == "Service" {
            let (k, v) = line.split_once('=').expect("key=value");
            keys.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    keys
}

#[test]
fn unit_keeps_its_hardening() {
    let keys = service_keys();
    let one = |k: &str| -> &str {
        match keys.get(k).map(Vec::as_slice) {
            Some([v]) => v,
            other => panic!("{k}: expected exactly one value, got {other:?}"),
        }
    };
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("StateDirectory", "fjord"),
        ("RestartPreventExitStatus", "64"),
    ] {
        assert_eq!(one(key), want, "{key}");
    }
    assert!(
        keys["SystemCallFilter"]
            .iter()
            .any(|v| v == "@system-service"),
        "SystemCallFilter=@system-service"
    );
    for key in ["MemoryMax", "LimitNOFILE"] {
        assert!(!one(key).is_empty(), "{key} is set");
    }
    let nofile: u64 = one("LimitNOFILE").parse().expect("LimitNOFILE is a number");
    assert!(nofile >= 4096, "LimitNOFILE={nofile}");
    // The unit runs the config the package ships.
    assert!(
        one("ExecStart").ends_with("serve --config /etc/fjord/aggregator.toml"),
        "{}",
        one("ExecStart")
    );
    // Nothing may be written outside the state directory: no writable path is opened up.
    assert!(
        !keys.contains_key("ReadWritePaths"),
        "{:?}",
        keys.get("ReadWritePaths")
    );
}

#[test]
fn default_config_is_valid_loopback_only_and_in_the_state_directory() {
    let path = repo().join("deploy/deb/aggregator.toml");
    let cfg =
        fjord_aggregator::config::load(Some(&path), fjord_aggregator::config::Overrides::default())
            .expect("the shipped config loads");
    let state = format!("/var/lib/{}", service_keys()["StateDirectory"][0]);
    assert_eq!(cfg.data_dir, PathBuf::from(&state));
    assert!(cfg.listen.ip().is_loopback(), "{}", cfg.listen);
    assert!(cfg.deprecations.is_empty(), "{:?}", cfg.deprecations);
    let metrics = cfg.metrics_listen.expect("metrics_listen is set");
    assert!(metrics.ip().is_loopback(), "{metrics}");
    assert!(cfg.tokens.is_empty());
}
