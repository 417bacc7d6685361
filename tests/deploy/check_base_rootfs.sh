#!/usr/bin/env bash
# docker/base-rootfs makes the tarball that `docker import` turns into the base image; the tar's "./"
# entry becomes the image's "/". Run here with a fake debootstrap (a root holding /bin/true and its
# libraries; Docker does not run on this machine), then check the image as the user that runs it:
#   1. the "./" entry is mode 755 (a `mktemp -d` folder is 700);
#   2. as root: unpacked, a non-root uid (10001, the image's user) can run /bin/true chrooted into it,
#      which is what failed in the image ("exec ...: permission denied").
set -euo pipefail
script=${1:?usage: check_base_rootfs.sh PATH/TO/docker/base-rootfs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

mkdir "$work/fakebin"
cat >"$work/fakebin/debootstrap" <<'FAKE'
#!/bin/sh
# debootstrap --variant=minbase SUITE DIR MIRROR, faked: DIR gets /bin/true and the libraries it needs.
set -e
dir=$3
mkdir -p "$dir/bin"
cp /bin/true "$dir/bin/true"
for lib in $(ldd /bin/true | grep -o '/[^ ]*'); do
  mkdir -p "$dir$(dirname "$lib")"
  cp -L "$lib" "$dir$lib"
done
FAKE
chmod +x "$work/fakebin/debootstrap"

PATH="$work/fakebin:$PATH" MIRROR=http://mirror.invalid/debian "$script" >"$work/rootfs.tar"

/usr/bin/python3 - "$work/rootfs.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    root = t.getmembers()[0]
    assert root.name in (".", "./") and root.isdir(), f"first entry is {root.name!r}, not the root folder"
    mode = root.mode & 0o7777
    print(f"rootfs tar: '/' is mode {mode:o}, {len(t.getmembers())} entries")
    if mode & 0o755 != 0o755:
        sys.exit(f"FAILED: the image's / would be mode {mode:o}: a non-root user could not execute anything")
    assert any(m.name.endswith("bin/true") for m in t.getmembers()), "bin/true missing from the tar"
PY

if [ "$(id -u)" != 0 ]; then
  echo "check_base_rootfs: the run-as-uid-10001 part needs root; checked the tar only"
  exit 0
fi
mkdir "$work/root"
tar -C "$work/root" -xpf "$work/rootfs.tar"
if ! out=$(chroot --userspec=10001:10001 "$work/root" /bin/true 2>&1); then
  echo "FAILED: uid 10001 cannot run /bin/true in the unpacked root ($(stat -c %a "$work/root")): $out"
  exit 1
fi
echo "check_base_rootfs: uid 10001 runs /bin/true in the unpacked root (mode $(stat -c %a "$work/root"))"
