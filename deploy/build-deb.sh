#!/usr/bin/env bash
# Builds the Debian package: the server and the vscpd driver library in release mode, then
# `cargo deb --no-build` with the metadata in Cargo.toml ([package.metadata.deb]).
#
#   deploy/build-deb.sh        -> target/debian/vscp-websocksrv_<version>_<arch>.deb
#
# Needs cargo-deb (`cargo install cargo-deb`). Install with `dpkg -i`; the first install prints
# the generated admin password.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "cargo-deb not found: cargo install cargo-deb" >&2; exit 1; }
cargo build --release -p vscp-websocksrv -p vscpl2drv-websocksrv
cargo deb -p vscp-websocksrv --no-build --strip "$@"
