#!/usr/bin/env python3
"""Structural check of custom resources, for deploy/k8s/validate.sh.

kubernetes-validate knows only the built-in Kubernetes API, so objects of a CRD
(Prometheus Operator monitors, cert-manager issuers and certificates) cannot go through it.
This script checks each such object against the small table CRDS below, as strictly as
kubernetes-validate checks the rest: required fields present, no unknown field at the top or
in `spec` (or in the listed sub-objects), the right shapes for selectors and lists. A kind
that is not in the table and not built in fails, so a new CRD is added here deliberately.

Usage: crd_check.py OUT_DIR FILE...
For each FILE, prints the path to hand to kubernetes-validate: FILE itself when it holds no
custom resource, else a copy in OUT_DIR without them (none when nothing is left).
Exits 1 with one line per problem.
"""

import os
import sys

import yaml

# (apiVersion, kind) -> rules. `spec`: required and allowed keys of .spec (`one_of`: exactly
# one of these); `items`: for a list field of spec, the required and allowed keys of each
# item; `namespaced`: whether metadata.namespace is required.
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
        obj = spec.get(field)
        if obj is None:
            continue
        if not isinstance(obj, dict) or required - set(obj) or set(obj) - allowed:
            out.append(f"{name}: spec.{field} needs {sorted(required)} and takes only {sorted(allowed)}")
    return out


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
