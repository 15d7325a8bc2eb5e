#!/usr/bin/env python3
"""Invariants of the rendered HA overlay (deploy/k8s/overlays/ha), for deploy/k8s/validate.sh.

kubernetes-validate and crd_check.py say whether each object is well formed; this says
whether the overlay as `kubectl kustomize` renders it is still highly available and still
keeps its credentials out of the manifests:

- a CloudNativePG Cluster with 3 instances and a synchronous standby
  (`postgresql.synchronous` with `number` >= 1 and `dataDurability: required`, or the older
  `minSyncReplicas` >= 1), archiving its WAL to an ObjectStore that exists, and a
  ScheduledBackup of it;
- a Pooler of type `rw` in `session` mode (advisory locks and LISTEN/NOTIFY need it) in
  front of that Cluster;
- the aggregator as a Deployment of at least 2 replicas, and no StatefulSet of it left;
- a PodDisruptionBudget that selects the Deployment's pods and keeps at least one;
- required pod anti-affinity on `kubernetes.io/hostname` that selects those pods;
- readiness `GET /ready` on the serving port, and a liveness probe that is not the readiness
  probe (a database outage must not restart every replica);
- FJORD_STORE from a Secret, and no PostgreSQL URL with a password, nor a `password=`
  setting, in any string of the output (Secret data decoded);
- the aggregator pods' NetworkPolicy lets them reach the pooler's port.

Usage: ha_check.py RENDERED.yaml
Exits 1 with one line per problem.
"""

import base64
import re
import sys

import yaml

AGGREGATOR = "fjord-aggregator"
DSN_WITH_PASSWORD = re.compile(r"postgres(?:ql)?://[^\s/@:]+:[^\s/@]+@")
PASSWORD_SETTING = re.compile(r"\bpassword\s*=\s*\S")
POSTGRES_PORT = 5432


def selects(selector, labels):
    """Whether a label selector (matchLabels only) selects pods with `labels`."""
    if not isinstance(selector, dict) or set(selector) - {"matchLabels"}:
        return False
    want = selector.get("matchLabels") or {}
    return bool(want) and all(labels.get(k) == v for k, v in want.items())


def strings(value, where):
    """Every string in a document, with where it is."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{where}[{i}]")


def one(docs, kind, problems, name=None):
    found = [d for d in docs if d.get("kind") == kind
             and (name is None or d["metadata"].get("name") == name)]
    if len(found) != 1:
        problems.append(f"expected one {kind}{' ' + name if name else ''}, found {len(found)}")
        return None
    return found[0]


def check_database(docs, problems):
    cluster = one(docs, "Cluster", problems)
    if cluster is None:
        return
    name = cluster["metadata"]["name"]
    spec = cluster.get("spec", {})
    if spec.get("instances") != 3:
        problems.append(f"Cluster {name}: instances is {spec.get('instances')!r}, not 3")
    sync = (spec.get("postgresql") or {}).get("synchronous")
    if sync is not None:
        if not isinstance(sync.get("number"), int) or sync["number"] < 1:
            problems.append(f"Cluster {name}: synchronous.number must be at least 1")
        if sync.get("dataDurability", "required") != "required":
            problems.append(f"Cluster {name}: dataDurability must be required: with "
                            "preferred, commits go on unreplicated when no standby answers")
    elif not (isinstance(spec.get("minSyncReplicas"), int) and spec["minSyncReplicas"] >= 1):
        problems.append(f"Cluster {name}: no synchronous standby (postgresql.synchronous)")
    archivers = [p for p in spec.get("plugins") or [] if p.get("isWALArchiver")]
    stores = {d["metadata"]["name"] for d in docs if d.get("kind") == "ObjectStore"}
    if not archivers and not (spec.get("backup") or {}).get("barmanObjectStore"):
        problems.append(f"Cluster {name}: no WAL archiving (a plugin with isWALArchiver)")
    for p in archivers:
        store = (p.get("parameters") or {}).get("barmanObjectName")
        if store not in stores:
            problems.append(f"Cluster {name}: plugin {p.get('name')} archives to "
                            f"ObjectStore {store!r}, which is not in the overlay")
    if not any(d.get("kind") == "ScheduledBackup"
               and (d.get("spec") or {}).get("cluster", {}).get("name") == name
               for d in docs):
        problems.append(f"Cluster {name}: no ScheduledBackup of it")
    pooler = one(docs, "Pooler", problems)
    if pooler is None:
        return
    pspec = pooler.get("spec", {})
    pname = pooler["metadata"]["name"]
    if pspec.get("cluster", {}).get("name") != name:
        problems.append(f"Pooler {pname}: points at {pspec.get('cluster')}, not Cluster {name}")
    if pspec.get("type", "rw") != "rw":
        problems.append(f"Pooler {pname}: type must be rw (the primary)")
    mode = (pspec.get("pgbouncer") or {}).get("poolMode", "session")
    if mode != "session":
        problems.append(f"Pooler {pname}: poolMode is {mode!r}: advisory locks and "
                        "LISTEN/NOTIFY need session mode")


def check_aggregator(docs, problems):
    if any(d.get("kind") == "StatefulSet" and d["metadata"].get("name") == AGGREGATOR
           for d in docs):
        problems.append(f"the single-replica StatefulSet {AGGREGATOR} is still rendered")
    dep = one(docs, "Deployment", problems, AGGREGATOR)
    if dep is None:
        return
    spec = dep.get("spec", {})
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 2:
        problems.append(f"Deployment {AGGREGATOR}: replicas is {replicas!r}, fewer than 2")
    pod = spec.get("template", {})
    labels = pod.get("metadata", {}).get("labels") or {}
    pdbs = [d for d in docs if d.get("kind") == "PodDisruptionBudget"
            and selects(d.get("spec", {}).get("selector"), labels)]
    if len(pdbs) != 1:
        problems.append(f"Deployment {AGGREGATOR}: {len(pdbs)} PodDisruptionBudgets select "
                        "its pods, not one")
    else:
        pdb = pdbs[0]["spec"]
        keep = pdb.get("minAvailable")
        if not (isinstance(keep, int) and 1 <= keep < replicas) and pdb.get("maxUnavailable") != 1:
            problems.append(f"PodDisruptionBudget {pdbs[0]['metadata']['name']}: keep at least "
                            "one pod and allow one eviction (minAvailable: 1)")
    terms = (((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or []
    if not any(t.get("topologyKey") == "kubernetes.io/hostname"
               and selects(t.get("labelSelector"), labels) for t in terms):
        problems.append(f"Deployment {AGGREGATOR}: no required pod anti-affinity on "
                        "kubernetes.io/hostname selecting its own pods")
    containers = (pod.get("spec") or {}).get("containers") or []
    agg = next((c for c in containers if c.get("name") == AGGREGATOR), None)
    if agg is None:
        problems.append(f"Deployment {AGGREGATOR}: no container {AGGREGATOR}")
        return
    ready = (agg.get("readinessProbe") or {}).get("httpGet") or {}
    if ready.get("path") != "/ready" or ready.get("port") not in ("https", 3100):
        problems.append(f"Deployment {AGGREGATOR}: readiness must be GET /ready on the "
                        f"serving port, not {ready}")
    live = agg.get("livenessProbe")
    if not live or live.get("httpGet") == agg.get("readinessProbe", {}).get("httpGet"):
        problems.append(f"Deployment {AGGREGATOR}: liveness must not be the readiness probe, "
                        "or a database outage restarts every replica")
    store = [e for e in agg.get("env") or [] if e.get("name") == "FJORD_STORE"]
    if len(store) != 1 or "value" in store[0] or not (
            store[0].get("valueFrom") or {}).get("secretKeyRef"):
        problems.append(f"Deployment {AGGREGATOR}: FJORD_STORE must come from a Secret "
                        "(valueFrom.secretKeyRef)")
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"
                and selects(d.get("spec", {}).get("podSelector"), labels)]
    reaches_pooler = any(
        any(p.get("port") == POSTGRES_PORT for p in rule.get("ports") or [])
        and any("cnpg.io/poolerName" in ((peer.get("podSelector") or {}).get("matchLabels") or {})
                for peer in rule.get("to") or [])
        for np in policies for rule in np["spec"].get("egress") or [])
    if policies and not reaches_pooler:
        problems.append(f"NetworkPolicy of {AGGREGATOR}: no egress to the pooler's port "
                        f"{POSTGRES_PORT}")


def check_no_plaintext_credentials(docs, problems):
    for d in docs:
        where = f"{d.get('kind')} {d.get('metadata', {}).get('name')}"
        found = list(strings(d, where))
        if d.get("kind") == "Secret":
            for k, v in (d.get("data") or {}).items():
                try:
                    found.append((f"{where}.data.{k}", base64.b64decode(v).decode("utf-8", "replace")))
                except ValueError:
                    problems.append(f"{where}.data.{k}: not base64")
        for path, text in found:
            if DSN_WITH_PASSWORD.search(text) or PASSWORD_SETTING.search(text):
                problems.append(f"{path}: a database password in the manifests; take it "
                                "from a Secret made outside the repository")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    problems = []
    check_database(docs, problems)
    check_aggregator(docs, problems)
    check_no_plaintext_credentials(docs, problems)
    for p in problems:
        print(f"ha_check: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print("ha_check: the HA overlay keeps its invariants", file=sys.stderr)


if __name__ == "__main__":
    main()
