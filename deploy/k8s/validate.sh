#!/usr/bin/env bash
# Validates deploy/k8s against the Kubernetes API schemas with kubernetes-validate (strict:
# unknown fields are errors), for the oldest Kubernetes the manifests support (1.29, native
# sidecars) and the newest the validator knows:
#   - every object file as written;
#   - the rendered kustomizations (`kubectl kustomize`) of both entry points, deploy/k8s and
#     the HA overlay overlays/ha, which add the generated ConfigMaps and Secret, names with
#     hashes and image tags, and (in the overlay) the patches;
#   - then ha_check.py checks that the rendered HA overlay is still highly available (three
#     PostgreSQL instances, a synchronous standby, a session-mode pooler, two or more
#     aggregator replicas with a PodDisruptionBudget and anti-affinity, …) and holds no
#     database password.
# .ci/run installs a pinned kubectl and passes it, so CI always renders. A given kubectl that
# is missing, or none at all under CI=true, is an error; only a developer's run without
# kubectl skips the rendered check, with a warning (the generators and overlays are then
# checked by tests/tests/deploy.rs alone, which reads them but does not run kustomize).
# The invariants between manifests and code are tests/tests/deploy.rs.
# Usage: deploy/k8s/validate.sh [path/to/kubernetes-validate [path/to/kubectl]]
set -euo pipefail
cd "$(dirname "$0")"
KV="${1:-kubernetes-validate}"
KUBECTL="${2:-}"
VERSIONS=(1.29.0 1.37.0)

objects=()
while IFS= read -r f; do
    grep -q '^kind: Kustomization' "$f" || objects+=("$f")
done < <(find . -name '*.yaml' | sort)

if [ -z "$KUBECTL" ] && command -v kubectl >/dev/null 2>&1; then
    KUBECTL=kubectl
fi
# The entry points: what `kubectl apply -k` is run on.
ENTRY_POINTS=(. overlays/ha)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rendered=()
if [ -n "$KUBECTL" ]; then
    if ! command -v "$KUBECTL" >/dev/null 2>&1; then
        echo "validate.sh: $KUBECTL not found" >&2
        exit 1
    fi
    for entry in "${ENTRY_POINTS[@]}"; do
        out="$work/rendered-$(echo "$entry" | tr -c 'a-z\n' '-').yaml"
        "$KUBECTL" kustomize "$entry" >"$out"
        rendered+=("$out")
    done
elif [ "${CI:-}" = "true" ]; then
    echo "validate.sh: no kubectl under CI: the rendered kustomization must be validated" >&2
    exit 1
else
    {
        echo "################################################################################"
        echo "validate.sh: WARNING: kubectl not found: the RENDERED kustomizations (generated"
        echo "ConfigMaps and Secret, hashed names, image tags, the HA overlay's patches and"
        echo "ha_check.py's invariants) are NOT validated. Run .ci/run, or pass a kubectl:"
        echo "deploy/k8s/validate.sh KUBERNETES_VALIDATE KUBECTL"
        echo "################################################################################"
    } >&2
fi

# Custom resources (Prometheus Operator monitors, cert-manager objects, CloudNativePG's
# Cluster, Pooler and ScheduledBackup, the Barman Cloud Plugin's ObjectStore) have no schema
# in kubernetes-validate, and no package registry ships CloudNativePG's: crd_check.py checks
# them structurally against its own table and hands back the files (or copies without them)
# for kubernetes-validate. It and ha_check.py need PyYAML, which kubernetes-validate's venv
# has.
PY="$(dirname "$(command -v "$KV")")/python3"
[ -x "$PY" ] || PY=python3
mkdir "$work/filtered"
"$PY" crd_check.py "$work/filtered" "${objects[@]}" "${rendered[@]}" >"$work/list"
to_validate=()
while IFS= read -r f; do
    to_validate+=("$f")
done <"$work/list"
if [ ${#rendered[@]} -gt 0 ]; then
    "$PY" ha_check.py "${rendered[1]}"
fi

what="${#objects[@]} files"
[ ${#rendered[@]} -gt 0 ] && what="$what and the rendered kustomizations of ${ENTRY_POINTS[*]}"
for v in "${VERSIONS[@]}"; do
    "$KV" --strict --quiet -k "$v" "${to_validate[@]}"
    echo "deploy/k8s: $what valid for Kubernetes $v"
done
