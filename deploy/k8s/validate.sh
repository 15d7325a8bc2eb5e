#!/usr/bin/env bash
# Validates deploy/k8s against the Kubernetes API schemas with kubernetes-validate (strict:
# unknown fields are errors), for the oldest Kubernetes the manifests support (1.29, native
# sidecars) and the newest the validator knows:
#   - every object file as written;
#   - the rendered kustomization (`kubectl kustomize`), which adds the generated ConfigMaps
#     and Secret, names with hashes and image tags.
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
rendered=""
if [ -n "$KUBECTL" ]; then
    if ! command -v "$KUBECTL" >/dev/null 2>&1; then
        echo "validate.sh: $KUBECTL not found" >&2
        exit 1
    fi
    rendered="$(mktemp --suffix=.yaml)"
    trap 'rm -f "$rendered"' EXIT
    "$KUBECTL" kustomize . >"$rendered"
elif [ "${CI:-}" = "true" ]; then
    echo "validate.sh: no kubectl under CI: the rendered kustomization must be validated" >&2
    exit 1
else
    {
        echo "################################################################################"
        echo "validate.sh: WARNING: kubectl not found: the RENDERED kustomization (generated"
        echo "ConfigMaps and Secret, hashed names, image tags) is NOT validated. Run .ci/run,"
        echo "or pass a kubectl: deploy/k8s/validate.sh KUBERNETES_VALIDATE KUBECTL"
        echo "################################################################################"
    } >&2
fi

# Custom resources (Prometheus Operator monitors, cert-manager objects) have no schema in
# kubernetes-validate: crd_check.py checks them structurally against its own table and hands
# back the files (or copies without them) for kubernetes-validate. It needs PyYAML, which
# kubernetes-validate's venv has.
PY="$(dirname "$(command -v "$KV")")/python3"
[ -x "$PY" ] || PY=python3
filtered_dir="$(mktemp -d)"
trap 'rm -rf "$filtered_dir" ${rendered:+"$rendered"}' EXIT
"$PY" crd_check.py "$filtered_dir" "${objects[@]}" ${rendered:+"$rendered"} >"$filtered_dir/list"
to_validate=()
while IFS= read -r f; do
    to_validate+=("$f")
done <"$filtered_dir/list"

for v in "${VERSIONS[@]}"; do
    "$KV" --strict --quiet -k "$v" "${to_validate[@]}"
    echo "deploy/k8s: ${#objects[@]} files${rendered:+ and the rendered kustomization} valid for Kubernetes $v"
done
