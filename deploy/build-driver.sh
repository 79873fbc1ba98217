#!/usr/bin/env bash
# Builds the vscpd Level II driver (crate transports/vscpd-driver) in release mode and puts it
# under the file name vscpd installations use, libvscpl2drv-websocksrv.so. Cargo itself can
# only produce libvscpl2drv_websocksrv.so: library names cannot contain '-'.
#
#   deploy/build-driver.sh                 -> <target>/release/libvscpl2drv-websocksrv.so
#   deploy/build-driver.sh /var/lib/vscp/drivers/level2
#                                          -> installed there (run as a user who may write it)
#
# The name matters only to vscpd's `path-driver` setting; any name works if the config says so.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p vscpl2drv-websocksrv
# Honour CARGO_TARGET_DIR and build.target-dir from cargo config alike.
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
built="$target_dir/release/libvscpl2drv_websocksrv.so"
if [ ! -f "$built" ]; then
    echo "build-driver: $built not found after the build" >&2
    exit 1
fi
dest_dir="${1:-$target_dir/release}"
mkdir -p "$dest_dir"
# A copy, not a link: vscpd installs usually live outside the build tree, and replacing the
# file (new inode) is safe while an old copy is still mapped by a running vscpd.
install -m 0755 "$built" "$dest_dir/libvscpl2drv-websocksrv.so.tmp"
mv -f "$dest_dir/libvscpl2drv-websocksrv.so.tmp" "$dest_dir/libvscpl2drv-websocksrv.so"
echo "$dest_dir/libvscpl2drv-websocksrv.so"
