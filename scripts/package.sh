#!/usr/bin/env bash
# Builds the Debian package dbjobs_<version>_<arch>.deb with cargo-deb: /usr/bin/dbjobs, the
# plugins in /usr/lib/dbjobs/plugins, the annotated /etc/dbjobs/dbjobs.cnf (written by
# `dbjobs settings --format cnf` from the settings declarations), the systemd units, the man
# pages and shell completions (written by `dbjobs generate` from the CLI definition) and the
# deployment recipes. What goes where is [package.metadata.deb] in core/Cargo.toml.
#
#   scripts/package.sh                       release build, then the package in target/debian
#   scripts/package.sh --profile dev --no-build --fast --out DIR
#                                            the test suite's package: the debug build that
#                                            is already there, light compression
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: scripts/package.sh [--profile release|dev|NAME] [--no-build] [--fast] [--out DIR]"
}
die() {
    echo "package: $*" >&2
    exit 1
}

profile=release
build=yes
fast=()
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=${2:?--profile needs a name}; shift 2 ;;
        --no-build) build=; shift ;;
        --fast) fast=(--fast); shift ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument $1" ;;
    esac
done
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-deb >/dev/null 2>&1 ||
    die "cargo-deb is missing: run scripts/setup.sh (it installs it), or cargo install cargo-deb --locked"

case "$profile" in
    dev | debug) profile=dev; profile_dir=debug ;;
    *) profile_dir=$profile ;;
esac
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || die "cannot find the target directory (cargo metadata)"
built="$target_dir/$profile_dir"
out=${out:-$target_dir/debian}

# 1. The host and the plugins (the workspace's default members).
if [ -n "$build" ]; then
    cargo build --locked --profile "$profile"
fi
bin="$built/dbjobs"
[ -x "$bin" ] || die "$bin is missing: build it (drop --no-build, or cargo build --profile $profile)"

# 2. What dbjobs writes about itself, from the plugins that go into the package (a private
#    copy: the loader refuses directories others can write).
stage="$built/dbjobs-package"
rm -rf "$stage"
mkdir -p "$stage/plugins" "$stage/man" "$stage/completions"
chmod 0700 "$stage/plugins"
for plugin in "$built"/libdbjobs_plugin_*.so; do
    [ -e "$plugin" ] || die "no plugin library in $built: build the workspace"
    case "$plugin" in *_example.so) continue ;; esac # for plugin authors, not for nodes
    install -m 0644 "$plugin" "$stage/plugins/"
done
"$bin" --plugin-dir "$stage/plugins" generate man "$stage/man" >/dev/null
gzip -9n "$stage"/man/*.1
"$bin" generate completions "$stage/completions" >/dev/null
if ! "$bin" --plugin-dir "$stage/plugins" settings --format cnf >"$stage/dbjobs.cnf"; then
    die "\`dbjobs settings --format cnf\` failed, so there is no /etc/dbjobs/dbjobs.cnf to package (this dbjobs must have the settings command)"
fi

# 3. The package.
mkdir -p "$out"
cargo deb --locked -p dbjobs --no-build --profile "$profile" "${fast[@]}" --output "$out" >"$stage/cargo-deb.log" 2>&1 ||
    { cat "$stage/cargo-deb.log" >&2; die "cargo deb failed"; }
deb=$(sed -n 's/^\(\/.*\.deb\)$/\1/p' "$stage/cargo-deb.log" | tail -n 1)
[ -n "$deb" ] || deb=$(ls -t "$out"/dbjobs_*.deb | head -n 1)
echo "$deb"
