#!/usr/bin/env bash
# Installs what dbjobs's tests, demo and benchmark need on a Debian machine, when it is missing:
# MariaDB server, client and backup tools, socat and gzip (the reference pipeline of the
# benchmark), systemd's analyzer and dpkg (the package tests), cargo-deb (scripts/package.sh),
# a C++ compiler and cargo-fuzz (the fuzz targets in tests/fuzz/). As root it uses apt; otherwise it
# names what to install and fails.
set -euo pipefail

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

have mariadbd || need_pkgs+=(mariadb-server)
have mariadb-install-db || need_pkgs+=(mariadb-server)
have mariadb || need_pkgs+=(mariadb-client)
have mariadb-dump || need_pkgs+=(mariadb-client)
have mariadb-backup || need_pkgs+=(mariadb-backup)
have mbstream || need_pkgs+=(mariadb-backup)
have socat || need_pkgs+=(socat)
have gzip || need_pkgs+=(gzip)
have gcc || need_pkgs+=(gcc)
have systemd-analyze || need_pkgs+=(systemd)
have dpkg-deb || need_pkgs+=(dpkg)
have strip || need_pkgs+=(binutils)
have g++ || need_pkgs+=(g++) # libfuzzer-sys builds libFuzzer

if [ ${#need_pkgs[@]} -gt 0 ]; then
    # shellcheck disable=SC2207
    pkgs=($(printf '%s\n' "${need_pkgs[@]}" | sort -u))
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages: ${pkgs[*]}" >&2
        echo "setup: install them with: sudo apt-get install ${pkgs[*]}  (or run this script as root)" >&2
        exit 1
    fi
    echo "setup: installing ${pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    # Debian's own cargo is older than the 1.89 the workspace needs: use rustup's stable.
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: cargo is missing: install Rust 1.89 or newer (https://rustup.rs), then run this again" >&2
        exit 1
    fi
    echo "setup: installing Rust (stable, minimal profile) with rustup"
    export DEBIAN_FRONTEND=noninteractive
    command -v curl >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null; }
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs -o /tmp/rustup-init.sh ||
        { echo "setup: cannot download rustup; install Rust 1.89 or newer by hand, then run this again" >&2; exit 1; }
    sh /tmp/rustup-init.sh -y --profile minimal --default-toolchain stable >/dev/null
    rm -f /tmp/rustup-init.sh
    export PATH="$HOME/.cargo/bin:$PATH"
fi
# cargo-deb builds the Debian package (scripts/package.sh); pinned so the package build does
# not change under the tests.
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "setup: installing cargo-deb $CARGO_DEB_VERSION with cargo install"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi

# The fuzz targets' runner (scripts/test.sh replays their corpora); it drives the nightly
# sanitizer flags, which the stable toolchain accepts with RUSTC_BOOTSTRAP=1.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz with cargo install (a few minutes)"
    if ! cargo install cargo-fuzz --locked >/tmp/dbjobs-cargo-fuzz-install.log 2>&1; then
        tail -20 /tmp/dbjobs-cargo-fuzz-install.log >&2
        echo "setup: cannot install cargo-fuzz: run 'cargo install cargo-fuzz --locked' (it needs crates.io and a C compiler), then run this again" >&2
        exit 1
    fi
fi

echo "setup: $(mariadbd --version 2>/dev/null || /usr/sbin/mariadbd --version), $(cargo --version), $(cargo fuzz --version)"
