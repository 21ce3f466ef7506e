#!/usr/bin/env bash
# Unpacks a software Vulkan driver (Mesa 25.0.7's lavapipe, from Debian bookworm-backports) into a
# project cache so the WebGPU backend can be tested without a GPU. Nothing is installed
# system-wide: a private apt sources list and state folder feed `apt-get download`, and the .deb
# files are unpacked with `dpkg -x`. (Debian 12's own lavapipe, Mesa 22.3, is rejected by Dawn;
# installing the backport instead would upgrade 14 system packages.)
#
# Idempotent: a second run only prints the environment. Progress goes to stderr; stdout is the
# environment to use, so `eval "$(scripts/setup-software-vulkan.sh)"` works.
# Without apt/dpkg (or without network) it prints a warning and exits 0: the tests that need the
# software driver then skip with a message.
#
# Env: UPS_VULKAN_CACHE (default <repo>/.cache/vulkan), UPS_DEBIAN_MIRROR (default: the system's
# Debian mirror, else deb.debian.org).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${UPS_VULKAN_CACHE:-$ROOT/.cache/vulkan}
MESA_VERSION='25.0.7-2~bpo12+1'
ARCH_TRIPLET=x86_64-linux-gnu
LIB=$CACHE/root/usr/lib/$ARCH_TRIPLET
ICD=$CACHE/lvp_icd.json
# Provided by every Debian system; never unpacked from a download.
SYSTEM_PKGS=' libc6 libgcc-s1 libstdc++6 '

log() { echo "setup-software-vulkan: $*" >&2; }
give_up() {
  log "warning: $*"
  log "the WebGPU tests that need a software Vulkan driver will be skipped"
  exit 0
}

print_env() {
  cat "$CACHE/env.sh"
}

if [ -f "$CACHE/env.sh" ] && [ -f "$ICD" ] && [ -f "$LIB/libvulkan_lvp.so" ] && [ -f "$LIB/libvulkan.so.1" ] \
  && [ "$(cat "$CACHE/mesa-version" 2>/dev/null)" = "$MESA_VERSION" ]; then
  log "already set up in $CACHE"
  print_env
  exit 0
fi

for tool in apt-get apt-cache dpkg dpkg-deb ldd; do
  command -v "$tool" >/dev/null 2>&1 || give_up "$tool not found (this needs a Debian-based system)"
done
[ "$(dpkg --print-architecture)" = amd64 ] || give_up "only amd64 is supported (this is $(dpkg --print-architecture))"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || give_up "$KEYRING is missing (package debian-archive-keyring)"

# The system's own Debian mirror (it may be a local proxy), else the public one.
mirror=${UPS_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed -E 's/\[[^]]*\]//' | awk '{print $2}') \
    | grep -E '/debian/?$' | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}

APT_DIR=$CACHE/apt
DEBS=$CACHE/debs
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/parts" "$DEBS"
cat >"$APT_DIR/sources.list" <<EOF
deb [signed-by=$KEYRING] $mirror bookworm main
deb [signed-by=$KEYRING] $mirror bookworm-backports main
EOF
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT_DIR/sources.list"
  -o "Dir::Etc::SourceParts=$APT_DIR/parts"
  -o "Dir::State=$APT_DIR"
  -o "Dir::State::Lists=$APT_DIR/lists"
  -o "Dir::Cache=$APT_DIR/cache"
  -o "Debug::NoLocking=1"
  -o "Acquire::Retries=3"
)
# As root apt drops to the _apt user for downloads, which cannot write into the cache folder.
[ "$(id -u)" = 0 ] && APT_OPTS+=(-o "APT::Sandbox::User=root")

log "fetching package lists for bookworm + bookworm-backports from $mirror (private state in $APT_DIR)"
apt-get "${APT_OPTS[@]}" -qq update >&2 || give_up "apt-get update failed (no network?)"

download() {
  # Downloads into $DEBS unless a .deb of that package is already there.
  local want=()
  for spec in "$@"; do
    local name=${spec%%=*}
    compgen -G "$DEBS/${name}_*.deb" >/dev/null || want+=("$spec")
  done
  [ ${#want[@]} -eq 0 ] && return 0
  log "downloading ${want[*]}"
  (cd "$DEBS" && apt-get "${APT_OPTS[@]}" -qq download "${want[@]}" >&2)
}

download "mesa-vulkan-drivers=$MESA_VERSION" libvulkan1 || give_up "apt-get download mesa-vulkan-drivers=$MESA_VERSION failed"

# Unpack into a fresh folder, then swap it in, so an interrupted run leaves no half-tree behind.
STAGE=$CACHE/root.tmp.$$
trap 'rm -rf "$STAGE"' EXIT
unpack_all() {
  rm -rf "$STAGE"
  mkdir -p "$STAGE"
  for deb in "$DEBS"/*.deb; do dpkg -x "$deb" "$STAGE"; done
}
missing_libs() {
  local lib=$STAGE/usr/lib/$ARCH_TRIPLET
  LD_LIBRARY_PATH=$lib ldd "$lib/libvulkan_lvp.so" "$lib/libvulkan.so.1" 2>/dev/null | awk '/not found/ {print $1}' | sort -u
}
installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

unpack_all
# Libraries the driver needs that this system lacks (e.g. libllvm15, libxcb-* on a minimal
# image): download the not-installed direct dependencies of what we have, unpack, repeat.
for _round in 1 2 3 4; do
  missing=$(missing_libs)
  [ -z "$missing" ] && break
  log "missing libraries: $(echo "$missing" | tr '\n' ' ')"
  deps=()
  for deb in "$DEBS"/*.deb; do
    while read -r dep; do
      [ -z "$dep" ] && continue
      case "$SYSTEM_PKGS" in *" $dep "*) continue ;; esac
      installed "$dep" && continue
      compgen -G "$DEBS/${dep}_*.deb" >/dev/null && continue
      deps+=("$dep")
    done < <(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g')
  done
  [ ${#deps[@]} -eq 0 ] && break
  mapfile -t deps < <(printf '%s\n' "${deps[@]}" | sort -u)
  download "${deps[@]}" || give_up "apt-get download ${deps[*]} failed"
  unpack_all
done
missing=$(missing_libs)
[ -z "$missing" ] || give_up "libvulkan_lvp.so still lacks: $(echo "$missing" | tr '\n' ' ')"

rm -rf "$CACHE/root"
mv "$STAGE" "$CACHE/root"
trap - EXIT

cat >"$ICD" <<EOF
{
  "file_format_version": "1.0.0",
  "ICD": {"library_path": "$LIB/libvulkan_lvp.so", "api_version": "1.4.305"}
}
EOF
# VK_DRIVER_FILES is the newer loader's name for VK_ICD_FILENAMES; set both.
cat >"$CACHE/env.sh" <<EOF
export VK_ICD_FILENAMES=$ICD
export VK_DRIVER_FILES=$ICD
export LD_LIBRARY_PATH=$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
EOF
cat >"$CACHE/env.json" <<EOF
{"VK_ICD_FILENAMES": "$ICD", "LD_LIBRARY_PATH": "$LIB", "mesaVersion": "$MESA_VERSION"}
EOF
echo "$MESA_VERSION" >"$CACHE/mesa-version"
log "lavapipe $MESA_VERSION unpacked in $CACHE; use it with:"
print_env
log "(software adapters are used only when asked for: --backend webgpu or UPS_WEBGPU_ALLOW_SOFTWARE=1)"
