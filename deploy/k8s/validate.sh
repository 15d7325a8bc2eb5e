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
# cert-manager's kinds (Certificate, Issuer, ClusterIssuer) are custom resources, for which
# kubernetes-validate has no schema (it would only warn and pass them unchecked). They are
# split out of every file and of the rendered output and validated against
# schemas/cert-manager.json (jsonschema, from kubernetes-validate's own venv) instead; any
# other kind without a schema is an error.
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

# Split: cert-manager objects are checked here against schemas/cert-manager.json; every
# other object goes to kubernetes-validate, one file per input so its messages still name it.
KV_PATH="$(command -v "$KV")"
PY="$(dirname "$KV_PATH")/python"
[ -x "$PY" ] || PY=python3
split="$(mktemp -d)"
trap 'rm -rf "$split" ${rendered:+"$rendered"}' EXIT
"$PY" - "$split" schemas/cert-manager.json "${objects[@]}" ${rendered:+"$rendered"} <<'PY'
import json, os, sys
import jsonschema, yaml
out, schema_file, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
validator = jsonschema.Draft202012Validator(json.load(open(schema_file)))
errors = 0
crs = 0
for n, path in enumerate(inputs):
    rest = []
    for doc in yaml.safe_load_all(open(path)):
        if doc is None:
            continue
        if str(doc.get("apiVersion", "")).startswith("cert-manager.io/"):
            crs += 1
            for e in validator.iter_errors(doc):
                where = "/".join(str(p) for p in e.absolute_path) or "(top)"
                name = doc.get("metadata", {}).get("name", "?")
                print(f"ERROR {path}: {doc.get('kind')} {name}: {where}: {e.message}")
                errors += 1
        else:
            rest.append(doc)
    if rest:
        # Named after the input (deploy/k8s/a/b.yaml -> 000-a__b.yaml) for the messages.
        base = os.path.normpath(path).lstrip("/").removesuffix(".yaml").replace("/", "__")
        with open(os.path.join(out, f"{n:03}-{base}.yaml"), "w") as f:
            yaml.safe_dump_all(rest, f, sort_keys=False)
if errors:
    sys.exit(1)
print(f"deploy/k8s: {crs} cert-manager objects valid against {schema_file}")
PY

for v in "${VERSIONS[@]}"; do
    # No schema must mean an error, not a warning: only cert-manager's kinds are expected
    # to have none, and they were split out above.
    if ! out="$("$KV" --strict --quiet -k "$v" "$split"/*.yaml 2>&1)"; then
        echo "$out" >&2
        exit 1
    fi
    if grep -q "Couldn't find schema" <<<"$out"; then
        echo "$out" >&2
        echo "validate.sh: an object without a schema (only cert-manager.io kinds are checked separately)" >&2
        exit 1
    fi
    [ -z "$out" ] || echo "$out"
    echo "deploy/k8s: ${#objects[@]} files${rendered:+ and the rendered kustomization} valid for Kubernetes $v"
done
