#!/usr/bin/env bash
# Builds the fjord .deb and checks it, as CI does (.ci/run): the package holds both binaries,
# the systemd unit, the default config, the man pages and the completions; it installs into
# an empty root, where the binaries run and the shipped config passes check-config; and the
# unit passes `systemd-analyze verify` against that installed root.
#
# Usage: deploy/deb/check.sh [OUT_DIR]   (the .deb is left in OUT_DIR, default target/debian)
#
# The package is made from the *debug* binaries that the tests have just built: a release
# build of both binaries (thin LTO, one codegen unit) costs several minutes on CI's two
# cores, and what this checks — the package's layout, metadata, conffiles, that the binaries
# start and the unit verifies — does not depend on the optimisation level. cargo-deb reads
# binaries from `target/release/` (`--no-build`), so they are staged in a temporary target
# directory of that shape rather than using cargo-deb's `--profile dev`, which it deprecates.
# A release package is built the same way from `cargo build --release` (docs/operations.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT="${1:-target/debian}"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# systemd-analyze comes with the systemd package, which minimal images lack; cargo-deb's
# `depends = "$auto"` (the libc6 version the binaries need) runs dpkg-shlibdeps of dpkg-dev.
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
if [ "${#missing[@]}" -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# cargo-deb, pinned, built once per machine into a cache directory (about 80 s on two cores).
CARGO_DEB_VERSION=3.8.0
CARGO_DEB_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/fjord-ci/cargo-deb-$CARGO_DEB_VERSION"
if [ ! -x "$CARGO_DEB_ROOT/bin/cargo-deb" ]; then
    cargo install -q --locked "cargo-deb@$CARGO_DEB_VERSION" --root "$CARGO_DEB_ROOT"
fi

export CARGO_INCREMENTAL=0
cargo build -q -p fjord-agent -p fjord-aggregator -p fjord-dist --bins

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/target"
mkdir -p "$STAGE/release"
cp target/debug/fjord-agent target/debug/fjord-aggregator "$STAGE/release/"
target/debug/fjord-dist "$STAGE/release/dist" >/dev/null

mkdir -p "$OUT"
DEB="$(CARGO_TARGET_DIR="$STAGE" "$CARGO_DEB_ROOT/bin/cargo-deb" -q -p fjord-aggregator \
    --no-build --fast -o "$OUT/")"
echo "deb: built $DEB"

fail() {
    echo "deb: FAILED: $*" >&2
    exit 1
}

# Metadata.
INFO="$(dpkg-deb --info "$DEB")"
grep -q '^ Package: fjord$' <<<"$INFO" || fail "package name: $INFO"
grep -q '^ Depends: .*libc6' <<<"$INFO" || fail "no libc6 dependency: $INFO"
grep -q 'conffiles' <<<"$INFO" || fail "no conffiles: $INFO"
[ "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles)" = "/etc/fjord/aggregator.toml" ] ||
    fail "conffiles is not exactly /etc/fjord/aggregator.toml"

# Contents.
CONTENTS="$(dpkg-deb --contents "$DEB" | awk '{print $NF}')"
for f in \
    ./usr/bin/fjord-agent \
    ./usr/bin/fjord-aggregator \
    ./lib/systemd/system/fjord-aggregator.service \
    ./etc/fjord/aggregator.toml \
    ./usr/share/man/man1/fjord-agent.1.gz \
    ./usr/share/man/man1/fjord-agent-run.1.gz \
    ./usr/share/man/man1/fjord-aggregator.1.gz \
    ./usr/share/man/man1/fjord-aggregator-serve.1.gz \
    ./usr/share/man/man1/fjord-aggregator-check-config.1.gz \
    ./usr/share/bash-completion/completions/fjord-agent \
    ./usr/share/bash-completion/completions/fjord-aggregator \
    ./usr/share/zsh/vendor-completions/_fjord-agent \
    ./usr/share/zsh/vendor-completions/_fjord-aggregator \
    ./usr/share/fish/vendor_completions.d/fjord-agent.fish \
    ./usr/share/fish/vendor_completions.d/fjord-aggregator.fish \
    ./usr/share/doc/fjord/copyright; do
    grep -qxF "$f" <<<"$CONTENTS" || fail "$f is not in the package"
done
echo "deb: metadata and contents ok ($(grep -c . <<<"$CONTENTS") entries)"

# Install into an empty root with dpkg itself (its database, conffile handling), without
# the dependencies, which the empty root lacks; the binaries then run from that root with
# the host's libc.
ROOT="$WORK/root"
mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates" "$ROOT/var/lib/dpkg/triggers"
touch "$ROOT/var/lib/dpkg/status" "$ROOT/var/lib/dpkg/available"
$SUDO dpkg --root="$ROOT" --force-depends --force-script-chrootless --no-triggers \
    --log=/dev/null -i "$DEB" >"$WORK/dpkg.log" 2>&1 || {
    cat "$WORK/dpkg.log" >&2
    fail "dpkg -i into an empty root"
}
grep -q '^Status: install ok installed$' "$ROOT/var/lib/dpkg/status" ||
    fail "dpkg did not record the package as installed"
"$ROOT/usr/bin/fjord-agent" --version
"$ROOT/usr/bin/fjord-aggregator" --version
"$ROOT/usr/bin/fjord-aggregator" check-config --config "$ROOT/etc/fjord/aggregator.toml"
zcat "$ROOT/usr/share/man/man1/fjord-aggregator-serve.1.gz" | grep -q -- 'listen' ||
    fail "the serve man page does not document --listen"

# The unit as installed, with ExecStart pointing into the installed root (verify checks that
# the binary exists). The man pages named in Documentation= are checked in that root too when
# man(1) is there to look them up.
UNIT_DIR="$WORK/unit"
mkdir -p "$UNIT_DIR"
sed "s#/usr/bin/fjord-aggregator#$ROOT/usr/bin/fjord-aggregator#g" \
    "$ROOT/lib/systemd/system/fjord-aggregator.service" >"$UNIT_DIR/fjord-aggregator.service"
MAN_CHECK=(--man=no)
if command -v man >/dev/null 2>&1; then MAN_CHECK=(--man=yes); fi
# verify exits 0 on an unknown or misspelt key (it only warns, and systemd would ignore the
# setting: a hardening line that silently does nothing), so any output fails the check.
VERIFY="$(MANPATH="$ROOT/usr/share/man" systemd-analyze verify "${MAN_CHECK[@]}" \
    "$UNIT_DIR/fjord-aggregator.service" 2>&1)" || fail "systemd-analyze verify: $VERIFY"
[ -z "$VERIFY" ] || fail "systemd-analyze verify warned: $VERIFY"
echo "deb: systemd-analyze verify ok"
# The exposure score, for the log (offline: no running manager needed).
systemd-analyze security --offline=true "$UNIT_DIR/fjord-aggregator.service" 2>/dev/null |
    tail -1 || true
echo "deb: all checks passed"
