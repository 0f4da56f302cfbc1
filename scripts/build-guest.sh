#!/usr/bin/env bash
# Builds the default Haywire guest from Debian's archive, into a cache:
#   kernel: Debian's linux-image-*-amd64 (downloaded with apt-get, unpacked, never installed)
#   initrd: busybox-static + guest/init + guest/init.d hooks (+ files from $HAYWIRE_GUEST_EXTRA)
#           + the static guest programs (haywire-companion, haywire-touch) from the build
#           directory $HAYWIRE_BUILD_DIR (built here first when it is configured; the Makefile
#           passes build/debug for `make test`, build/release for `make demo`)
# Rebuilds only when an input changes. Prints the directory holding vmlinuz and initrd.img
# ($cache/current is a link to it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
cache=${HAYWIRE_CACHE_DIR:-${XDG_CACHE_HOME:-$home/.cache}/haywire}
mkdir -p "$cache/kernels" "$cache/images"
log() { echo "build-guest: $*" >&2; }

# --- kernel -------------------------------------------------------------------------------
# The versioned package behind the linux-image-amd64 meta-package, e.g. linux-image-6.1.0-56-amd64.
resolve_kernel() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
kpkg=${HAYWIRE_KERNEL_PACKAGE:-$(resolve_kernel)}
if [ -z "$kpkg" ]; then
  # No package lists yet (fresh machine): fall back to a cached kernel, else update the lists.
  cached=$(ls -1 "$cache/kernels" 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$cached" ] && [ -f "$cache/kernels/$cached/vmlinuz" ]; then
    kpkg=$cached
  else
    log "updating apt package lists to find linux-image-amd64"
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
    kpkg=$(resolve_kernel)
  fi
fi
[ -n "$kpkg" ] || { log "cannot resolve linux-image-amd64 to a kernel package"; exit 1; }

kdir="$cache/kernels/$kpkg"
if [ ! -f "$kdir/vmlinuz" ]; then
  log "fetching $kpkg from Debian's archive"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  deb=$(ls "$tmp"/*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { log "apt-get download $kpkg failed"; exit 1; }
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
  mkdir -p "$kdir.tmp"
  mv "$tmp"/boot/vmlinuz-* "$kdir.tmp/vmlinuz"
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
  rm -rf "$tmp"
  trap - EXIT
fi

# --- initramfs ----------------------------------------------------------------------------
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file_is_static=$(ldd "$busybox" 2>&1 | grep -c "not a dynamic" || true)
if [ -z "$busybox" ] || [ "${file_is_static:-0}" = 0 ]; then
  busybox=/bin/busybox
  ldd "$busybox" 2>&1 | grep -q "not a dynamic" || { log "need a static busybox (apt-get install busybox-static)"; exit 1; }
fi
extra=${HAYWIRE_GUEST_EXTRA:-}

# --- static guest programs from the build directory in use ----------------------------------
guest_bins=()
build_dir=${HAYWIRE_BUILD_DIR:-}
if [ -n "$build_dir" ]; then
  case "$build_dir" in /*) ;; *) build_dir="$root/$build_dir" ;; esac
  if [ -f "$build_dir/CMakeCache.txt" ]; then
    cmake --build "$build_dir" --target haywire-companion haywire-touch >&2 \
      || { log "cannot build the guest programs in $build_dir"; exit 1; }
  fi
  for prog in haywire-companion haywire-touch; do
    bin="$build_dir/guest/companion/$prog"
    if [ -x "$bin" ]; then
      guest_bins+=("$bin")
    else
      log "warning: $bin not built; the image will not have $prog"
    fi
  done
fi

inputs_hash=$( {
  echo "kernel $kpkg"
  sha256sum "$busybox" "$root/guest/init"
  find "$root/guest/bin" "$root/guest/init.d" -type f -print0 | sort -z | xargs -0 -r sha256sum
  for b in "${guest_bins[@]}"; do echo "$(basename "$b") $(sha256sum < "$b")"; done
  [ -n "$extra" ] && [ -d "$extra" ] && (cd "$extra" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
  true
} | sha256sum | cut -c1-16)

image="$cache/images/$inputs_hash"
if [ ! -f "$image/initrd.img" ]; then
  log "building initramfs $inputs_hash"
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,etc/haywire/init.d,root}
  cp "$busybox" "$stage/bin/busybox"
  cp "$root/guest/init" "$stage/init"
  chmod 755 "$stage/init"
  cp -a "$root/guest/bin/." "$stage/bin/"
  for b in "${guest_bins[@]}"; do install -m 755 "$b" "$stage/bin/$(basename "$b")"; done
  cp -a "$root/guest/init.d/." "$stage/etc/haywire/init.d/" 2>/dev/null || true
  [ -n "$extra" ] && [ -d "$extra" ] && cp -a "$extra/." "$stage/"
  mkdir -p "$image.tmp"
  (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -9 > "$image.tmp/initrd.img"
  cp "$kdir/vmlinuz" "$image.tmp/vmlinuz"
  echo "$kpkg" > "$image.tmp/KERNEL"
  rm -rf "$image" && mv "$image.tmp" "$image"
  rm -rf "$stage"
  trap - EXIT
fi
ln -sfn "$image" "$cache/current.tmp" && mv -T "$cache/current.tmp" "$cache/current"
echo "$image"
