#!/usr/bin/env python3
"""Structural check of custom resources, for deploy/k8s/validate.sh.

kubernetes-validate knows only the built-in Kubernetes API, so objects of a CRD
(Prometheus Operator monitors, cert-manager issuers and certificates, CloudNativePG clusters,
poolers and backups, the Barman Cloud Plugin's object stores) cannot go through it. No package
registry this project can reach ships their schemas (CloudNativePG publishes its CRDs only in
its release manifests and Go module), so this script checks each such object against the
small table CRDS below, written from the projects' API references, as strictly as
kubernetes-validate checks the rest: required fields present, no unknown field at the top or
in `spec` (or in the listed sub-objects), the right shapes for selectors and lists, enum
values, integers, string-valued maps (CloudNativePG refuses `max_connections: 200` unquoted)
and CloudNativePG's six-field backup schedule. A kind that is not in the table and not built
in fails, so a new CRD is added here deliberately.

Usage: crd_check.py OUT_DIR FILE...
For each FILE, prints the path to hand to kubernetes-validate: FILE itself when it holds no
custom resource, else a copy in OUT_DIR without them (none when nothing is left).
Exits 1 with one line per problem.
"""

import os
import re
import sys

import yaml

# (apiVersion, kind) -> rules. `spec`: required and allowed keys of .spec (`one_of`: exactly
# one of these); `items`: for a list field of spec, the required and allowed keys of each
# item; `objects`: for a sub-object of spec (a dotted path), its required and allowed keys;
# `enums`: the values a dotted path may take; `ints`: paths that must be integers;
# `string_maps`: paths (an item's field as `list[].field`) whose values must all be strings;
# `cron6`: paths holding a six-field cron schedule; `patterns`: regexes a path must match;
# `namespaced`: whether metadata.namespace is required.
SELECTOR = {"matchLabels", "matchExpressions"}
_SCRAPE_LIMITS = {
    "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit",
    "labelValueLengthLimit", "keepDroppedTargets", "bodySizeLimit", "scrapeClass",
    "scrapeProtocols", "fallbackScrapeProtocol", "attachMetadata", "selectorMechanism",
    "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor",
    "convertClassicHistogramsToNHCB", "scrapeClassicHistograms", "jobLabel",
    "podTargetLabels", "selector", "namespaceSelector",
}
_ENDPOINT = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout",
    "honorLabels", "honorTimestamps", "trackTimestampsStaleness", "metricRelabelings",
    "relabelings", "proxyUrl", "followRedirects", "enableHttp2", "filterRunning",
    "authorization", "basicAuth", "oauth2", "tlsConfig", "bearerTokenSecret", "noProxy",
    "proxyFromEnvironment", "proxyConnectHeader",
}
_ISSUER = {"spec_one_of": {"acme", "ca", "selfSigned", "vault", "venafi"}}
_CNPG_STORAGE = {"storageClass", "size", "resizeInUseVolumes", "pvcTemplate"}
_BARMAN_COMPRESSION = {"bzip2", "gzip", "lz4", "snappy", "xz", "zstd"}
CRDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): {
        "namespaced": True,
        "spec_required": {"selector", "podMetricsEndpoints"},
        "spec_allowed": _SCRAPE_LIMITS | {"podMetricsEndpoints"},
        "items": {"podMetricsEndpoints": (set(), _ENDPOINT | {"portNumber"})},
    },
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "namespaced": True,
        "spec_required": {"selector", "endpoints"},
        "spec_allowed": _SCRAPE_LIMITS | {"endpoints", "targetLabels"},
        "items": {"endpoints": (set(), _ENDPOINT | {"bearerTokenFile"})},
    },
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "namespaced": True,
        "spec_required": {"groups"},
        "spec_allowed": {"groups"},
        "items": {"groups": ({"name", "rules"}, {"name", "rules", "interval", "limit",
                                                 "labels", "partial_response_strategy",
                                                 "query_offset"})},
    },
    ("cert-manager.io/v1", "Issuer"): {"namespaced": True, **_ISSUER},
    ("cert-manager.io/v1", "ClusterIssuer"): {"namespaced": False, **_ISSUER},
    ("cert-manager.io/v1", "Certificate"): {
        "namespaced": True,
        "spec_required": {"secretName", "issuerRef"},
        "spec_allowed": {
            "secretName", "issuerRef", "commonName", "dnsNames", "ipAddresses", "uris",
            "emailAddresses", "duration", "renewBefore", "renewBeforePercentage", "usages",
            "privateKey", "isCA", "subject", "secretTemplate", "keystores", "literalSubject",
            "revisionHistoryLimit", "additionalOutputFormats", "encodeUsagesInRequest",
            "nameConstraints", "otherNames", "signatureAlgorithm",
        },
        "objects": {"issuerRef": ({"name"}, {"name", "kind", "group"})},
    },
    ("postgresql.cnpg.io/v1", "Cluster"): {
        "namespaced": True,
        "spec_required": {"instances"},
        "spec_allowed": {
            "description", "inheritedMetadata", "imageName", "imageCatalogRef",
            "imagePullPolicy", "schedulerName", "postgresUID", "postgresGID", "instances",
            "minSyncReplicas", "maxSyncReplicas", "postgresql", "replicationSlots",
            "bootstrap", "replica", "superuserSecret", "enableSuperuserAccess",
            "certificates", "imagePullSecrets", "storage", "serviceAccountTemplate",
            "walStorage", "ephemeralVolumeSource", "startDelay", "stopDelay",
            "smartShutdownTimeout", "switchoverDelay", "failoverDelay",
            "livenessProbeTimeout", "affinity", "topologySpreadConstraints", "resources",
            "initContainerResources", "ephemeralVolumesSizeLimit", "priorityClassName",
            "primaryUpdateStrategy", "primaryUpdateMethod", "backup", "nodeMaintenanceWindow",
            "monitoring", "externalClusters", "logLevel", "projectedVolumeTemplate", "env",
            "envFrom", "managed", "seccompProfile", "tablespaces", "enablePDB", "plugins",
            "probes",
        },
        "objects": {
            "postgresql": (set(), {
                "parameters", "synchronous", "pg_hba", "pg_ident",
                "syncReplicaElectionConstraint", "shared_preload_libraries", "ldap",
                "promotionTimeout", "enableAlterSystem",
            }),
            "postgresql.synchronous": ({"method", "number"}, {
                "method", "number", "maxStandbyNamesFromCluster", "standbyNamesPre",
                "standbyNamesPost", "dataDurability",
            }),
            "bootstrap": (set(), {"initdb", "recovery", "pg_basebackup"}),
            "bootstrap.initdb": (set(), {
                "database", "owner", "secret", "options", "dataChecksums", "encoding",
                "localeCollate", "localeCType", "locale", "localeProvider", "icuLocale",
                "icuRules", "builtinLocale", "walSegmentSize", "postInitSQL",
                "postInitApplicationSQL", "postInitTemplateSQL", "import", "postInitSQLRefs",
                "postInitApplicationSQLRefs", "postInitTemplateSQLRefs",
            }),
            "storage": (set(), _CNPG_STORAGE),
            "walStorage": (set(), _CNPG_STORAGE),
            "resources": (set(), {"requests", "limits", "claims"}),
            "affinity": (set(), {
                "enablePodAntiAffinity", "topologyKey", "nodeSelector", "nodeAffinity",
                "tolerations", "podAntiAffinityType", "additionalPodAntiAffinity",
                "additionalPodAffinity",
            }),
        },
        "items": {"plugins": ({"name"}, {"name", "enabled", "isWALArchiver", "parameters"})},
        "enums": {
            "postgresql.synchronous.method": {"any", "first"},
            "postgresql.synchronous.dataDurability": {"required", "preferred"},
            "affinity.podAntiAffinityType": {"required", "preferred"},
            "primaryUpdateStrategy": {"unsupervised", "supervised"},
            "primaryUpdateMethod": {"switchover", "restart"},
        },
        "ints": ["instances", "postgresql.synchronous.number", "minSyncReplicas",
                 "maxSyncReplicas"],
        "string_maps": ["postgresql.parameters", "plugins[].parameters"],
    },
    ("postgresql.cnpg.io/v1", "Pooler"): {
        "namespaced": True,
        "spec_required": {"cluster", "pgbouncer"},
        "spec_allowed": {
            "cluster", "type", "instances", "template", "pgbouncer", "deploymentStrategy",
            "monitoring", "serviceTemplate",
        },
        "objects": {
            "cluster": ({"name"}, {"name"}),
            "pgbouncer": (set(), {
                "poolMode", "authQuerySecret", "authQuery", "parameters", "pg_hba", "paused",
            }),
            "template": (set(), {"metadata", "spec"}),
        },
        "enums": {"type": {"rw", "ro", "r"}, "pgbouncer.poolMode": {"session", "transaction"}},
        "ints": ["instances"],
        "string_maps": ["pgbouncer.parameters"],
    },
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): {
        "namespaced": True,
        "spec_required": {"schedule", "cluster"},
        "spec_allowed": {
            "suspend", "immediate", "schedule", "cluster", "backupOwnerReference", "target",
            "method", "pluginConfiguration", "online", "onlineConfiguration",
        },
        "objects": {
            "cluster": ({"name"}, {"name"}),
            "pluginConfiguration": ({"name"}, {"name", "parameters"}),
        },
        "enums": {
            "method": {"barmanObjectStore", "volumeSnapshot", "plugin"},
            "backupOwnerReference": {"none", "self", "cluster"},
            "target": {"primary", "prefer-standby"},
        },
        "cron6": ["schedule"],
    },
    ("barmancloud.cnpg.io/v1", "ObjectStore"): {
        "namespaced": True,
        "spec_required": {"configuration"},
        "spec_allowed": {"configuration", "retentionPolicy", "instanceSidecarConfiguration"},
        "objects": {
            "configuration": ({"destinationPath"}, {
                "s3Credentials", "azureCredentials", "googleCredentials", "endpointURL",
                "endpointCA", "destinationPath", "serverName", "wal", "data", "tags",
                "historyTags",
            }),
            "configuration.s3Credentials": (set(), {
                "accessKeyId", "secretAccessKey", "region", "sessionToken",
                "inheritFromIAMRole",
            }),
            "configuration.wal": (set(), {
                "compression", "encryption", "maxParallel", "archiveAdditionalCommandArgs",
                "restoreAdditionalCommandArgs",
            }),
            "configuration.data": (set(), {
                "compression", "encryption", "jobs", "immediateCheckpoint",
                "additionalCommandArgs", "restoreAdditionalCommandArgs",
            }),
        },
        "enums": {
            "configuration.wal.compression": _BARMAN_COMPRESSION,
            "configuration.data.compression": _BARMAN_COMPRESSION,
            "configuration.wal.encryption": {"AES256", "aws:kms"},
            "configuration.data.encryption": {"AES256", "aws:kms"},
        },
        "ints": ["configuration.wal.maxParallel", "configuration.data.jobs"],
        "patterns": {"retentionPolicy": r"^[1-9][0-9]*[dwm]$"},
    },
}


def built_in(api_version):
    """Whether kubernetes-validate has the schema: the core group (`v1`), a group without a
    dot (`apps`, `batch`) or one under `k8s.io`, as Kubernetes names its own groups."""
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return "." not in group or group.endswith(".k8s.io")


def check(doc, where):
    """Problems of one custom resource."""
    rules = CRDS[(doc.get("apiVersion"), doc.get("kind"))]
    name = f"{where}: {doc.get('kind')} {doc.get('metadata', {}).get('name', '?')}"
    out = []
    extra = set(doc) - {"apiVersion", "kind", "metadata", "spec"}
    if extra:
        out.append(f"{name}: unknown top-level fields {sorted(extra)}")
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        out.append(f"{name}: metadata.name is required")
    elif rules["namespaced"] and not meta.get("namespace"):
        out.append(f"{name}: metadata.namespace is required")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return out + [f"{name}: spec must be a mapping"]
    if "spec_one_of" in rules:
        present = set(spec) & rules["spec_one_of"]
        if len(present) != 1 or set(spec) - rules["spec_one_of"]:
            out.append(f"{name}: spec must have exactly one of {sorted(rules['spec_one_of'])}")
        return out
    missing = rules["spec_required"] - set(spec)
    if missing:
        out.append(f"{name}: spec lacks {sorted(missing)}")
    unknown = set(spec) - rules["spec_allowed"]
    if unknown:
        out.append(f"{name}: unknown spec fields {sorted(unknown)}")
    for field in ("selector",):
        sel = spec.get(field)
        if sel is not None and (not isinstance(sel, dict) or set(sel) - SELECTOR):
            out.append(f"{name}: spec.{field} must be a label selector")
    ns = spec.get("namespaceSelector")
    if ns is not None and (not isinstance(ns, dict) or set(ns) - {"any", "matchNames"}):
        out.append(f"{name}: spec.namespaceSelector takes only any or matchNames")
    for field, (required, allowed) in rules.get("items", {}).items():
        items = spec.get(field)
        if items is None:
            continue
        if not isinstance(items, list) or not items:
            out.append(f"{name}: spec.{field} must be a non-empty list")
            continue
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                out.append(f"{name}: spec.{field}[{i}] must be a mapping")
                continue
            if required - set(item):
                out.append(f"{name}: spec.{field}[{i}] lacks {sorted(required - set(item))}")
            if set(item) - allowed:
                out.append(f"{name}: spec.{field}[{i}] has unknown fields {sorted(set(item) - allowed)}")
    for field, (required, allowed) in rules.get("objects", {}).items():
        obj = at(spec, field)
        if obj is None:
            continue
        if not isinstance(obj, dict) or required - set(obj) or set(obj) - allowed:
            out.append(f"{name}: spec.{field} needs {sorted(required)} and takes only {sorted(allowed)}")
    for field, values in rules.get("enums", {}).items():
        v = at(spec, field)
        if v is not None and v not in values:
            out.append(f"{name}: spec.{field} is {v!r}, not one of {sorted(values)}")
    for field in rules.get("ints", []):
        v = at(spec, field)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            out.append(f"{name}: spec.{field} must be an integer, not {v!r}")
    for field in rules.get("string_maps", []):
        for where, m in maps_at(spec, field):
            if not isinstance(m, dict) or not all(isinstance(v, str) for v in m.values()):
                out.append(f"{name}: spec.{where} must map names to strings (quote numbers)")
    for field in rules.get("cron6", []):
        v = at(spec, field)
        if v is not None and (not isinstance(v, str) or len(v.split()) != 6):
            out.append(f"{name}: spec.{field} {v!r} must have six fields, seconds first")
    for field, pattern in rules.get("patterns", {}).items():
        v = at(spec, field)
        if v is not None and not (isinstance(v, str) and re.match(pattern, v)):
            out.append(f"{name}: spec.{field} {v!r} does not match {pattern}")
    return out


def at(obj, path):
    """The value at a dotted path of mappings, or None."""
    for key in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def maps_at(spec, path):
    """(where, value) of `a.b`, or of each item's `field` for `list[].field`."""
    if "[]." not in path:
        v = at(spec, path)
        return [] if v is None else [(path, v)]
    field, inner = path.split("[].", 1)
    items = spec.get(field)
    if not isinstance(items, list):
        return []
    return [(f"{field}[{i}].{inner}", at(item, inner)) for i, item in enumerate(items)
            if isinstance(item, dict) and at(item, inner) is not None]


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    problems, custom = [], 0
    for n, path in enumerate(files):
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        keep = []
        for doc in docs:
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in CRDS:
                custom += 1
                problems += check(doc, path)
                continue
            if not built_in(key[0] or ""):
                problems.append(f"{path}: {key[1]} of {key[0]} is neither built in nor in "
                                f"crd_check.py's CRDS: add its rules there")
                continue
            keep.append(doc)
        if len(keep) == len(docs):
            print(path)
        elif keep:
            copy = os.path.join(out_dir, f"{n}-{os.path.basename(path)}")
            with open(copy, "w", encoding="utf-8") as f:
                yaml.safe_dump_all(keep, f, sort_keys=False)
            print(copy)
    for p in problems:
        print(f"crd_check: {p}", file=sys.stderr)
    print(f"crd_check: {custom} custom resources checked structurally", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
