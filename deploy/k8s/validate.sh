#!/usr/bin/env bash
# Validates deploy/k8s against the Kubernetes API schemas with kubernetes-validate (strict:
# unknown fields are errors), for the oldest Kubernetes the manifests support (1.29, native
# sidecars) and the newest the validator knows:
#   - every object file as written;
#   - the rendered kustomization (`kubectl kustomize`), which adds the generated ConfigMaps
#     and Secret, names with hashes and image tags — when kubectl is installed.
# The invariants between manifests and code are tests/tests/deploy.rs.
# Usage: deploy/k8s/validate.sh [path/to/kubernetes-validate]
set -euo pipefail
cd "$(dirname "$0")"
KV="${1:-kubernetes-validate}"
VERSIONS=(1.29.0 1.37.0)

objects=()
while IFS= read -r f; do
    grep -q '^kind: Kustomization' "$f" || objects+=("$f")
done < <(find . -name '*.yaml' | sort)

rendered=""
if command -v kubectl >/dev/null 2>&1; then
    rendered="$(mktemp --suffix=.yaml)"
    trap 'rm -f "$rendered"' EXIT
    kubectl kustomize . >"$rendered"
else
    echo "validate.sh: kubectl not found: the rendered kustomization is not validated" >&2
fi

for v in "${VERSIONS[@]}"; do
    "$KV" --strict --quiet -k "$v" "${objects[@]}" ${rendered:+"$rendered"}
    echo "deploy/k8s: ${#objects[@]} files${rendered:+ and the rendered kustomization} valid for Kubernetes $v"
done
