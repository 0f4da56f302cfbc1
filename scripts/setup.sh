#!/usr/bin/env bash
# Installs what Haywire needs from Debian's archive, and nothing that is already there.
# Idempotent: a second run on a ready machine installs nothing and takes a second.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ make pkg-config git
  # libraries
  nlohmann-json3-dev libcli11-dev libfmt-dev libxxhash-dev libgtest-dev libgmock-dev libbenchmark-dev libpng-dev
  # the default guest: QEMU, busybox for its initramfs, cpio to pack it
  qemu-system-x86 busybox-static cpio
  # scripts/glass-overhead.sh, scripts/glass-slowdown.sh: whole-run timing
  hyperfine time
)

# `setup.sh fuzz`: also the libFuzzer toolchain. Debian 12's default clang (14) cannot compile
# libstdc++ 12's std::expected; clang-19 (in Debian 12) can.
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang-19 libclang-rt-19-dev)
fi
# `setup.sh tidy`: clang-tidy 19, for the same reason (clang-tidy 14 parses every file that
# includes <expected> as errors).
if [ "${1:-}" = "tidy" ]; then
  packages+=(clang-tidy-19)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
