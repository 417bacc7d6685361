#!/bin/sh
# Prints the Debian packages that own the shared libraries the given binaries link directly (ELF NEEDED),
# one per line, sorted. The runtime image installs exactly these (apt adds their own dependencies), so
# its package list follows the build instead of being kept by hand. Libraries that no package owns (for
# example an unpacked LibTorch under /opt) are skipped and reported on stderr.
set -eu
for bin in "$@"; do
  readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | while read -r lib; do
    path=$(ldd "$bin" | awk -v l="$lib" '$1 == l { print $3; exit }')
    [ -n "$path" ] || { echo "runtime-packages: $lib not found for $bin" >&2; exit 1; }
    pkg=""
    for p in "$path" "$(readlink -f "$path")" "/usr$path" "/usr$(readlink -f "$path")"; do
      pkg=$(dpkg-query -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [ -n "$pkg" ] && break
    done
    if [ -n "$pkg" ]; then echo "$pkg"; else echo "runtime-packages: no package owns $path (skipped)" >&2; fi
  done
done | sort -u
