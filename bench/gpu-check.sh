#!/usr/bin/env bash
# One call on a GPU machine (no network, maybe no Node): unpacks .gpu-pack/ (made by
# bench/gpu-pack.sh), points Vulkan at the NVIDIA driver's ICD, prints the host and the adapter,
# trains the 32-dim operator for a fixed number of steps on webgpu (the hand-written programs), on
# webgpu's tfjs-op path and on wasm, and writes step
# times, GFLOP/s and the adapter to $OUT/gpu.json when OUT is set, else bench/results/gpu.json.
# Runs in well under 8 minutes: each backend stops its timed steps after GPU_CHECK_BUDGET_S.
#
# Env: VK_ICD_FILENAMES (use this ICD instead of searching; the local dry run passes the software
# one with UPS_WEBGPU_ALLOW_SOFTWARE=1), GPU_CHECK_STEPS (webgpu steps, 50),
# GPU_CHECK_WASM_STEPS (5), GPU_CHECK_BUDGET_S (per backend, 120), GPU_CHECK_BATCH (64), GPU_PACK (default .gpu-pack),
# GPU_CHECK_PACKED_GLIBC=1 (run Node under the packed glibc even on a new enough host).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PACK=${GPU_PACK:-$ROOT/.gpu-pack}
if [ -n "${OUT:-}" ]; then RESULT=$OUT/gpu.json; else RESULT=$ROOT/bench/results/gpu.json; fi
STEPS=${GPU_CHECK_STEPS:-50}
WASM_STEPS=${GPU_CHECK_WASM_STEPS:-5}
BUDGET=${GPU_CHECK_BUDGET_S:-120}
BATCH=${GPU_CHECK_BATCH:-64}
say() { echo "gpu-check: $*" >&2; }
die() {
  say "error: $*"
  exit 2
}

[ -f "$PACK/app.tar.gz" ] || die "no pack in $PACK: run bench/gpu-pack.sh first and carry .gpu-pack"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

say "unpacking $PACK"
(cd "$PACK" && sha256sum -c --quiet MANIFEST 2>/dev/null) || say "warning: checksums do not match MANIFEST (or no sha256sum)"
tar xzf "$PACK/app.tar.gz" -C "$WORK" || die "cannot unpack app.tar.gz"
gzip -dc "$PACK/node.gz" >"$WORK/node" || die "cannot unpack node.gz"
chmod +x "$WORK/node"
gzip -dc "$PACK/dawn.node.gz" >"$WORK/app/node_modules/webgpu/dist/linux-x64/dawn.node" || die "cannot unpack dawn.node.gz"

if ls "$PACK"/debs/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  say "unpacking the Vulkan loader and glvnd (.debs) into / for the NVIDIA ICD"
  for f in "$PACK"/debs/*.deb; do dpkg -x "$f" / || say "warning: could not unpack $f"; done
  ldconfig || true
fi

echo "== host"
uname -srm
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
echo "glibc ${glibc:-unknown}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
else
  echo "nvidia-smi: not found"
fi
env | grep -E '^(NVIDIA_[A-Z_]+|VK_[A-Z_]+|__EGL_VENDOR_LIBRARY_FILENAMES|LD_LIBRARY_PATH)=' | sort || true

# --- the Vulkan ICD -------------------------------------------------------------------------
NV_LIB_DIRS=(/usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /lib/x86_64-linux-gnu)
find_lib() {
  # An absolute path for a library name: the usual folders, then the ld.so cache.
  local name=$1 d
  for d in "${NV_LIB_DIRS[@]}"; do [ -e "$d/$name" ] && { echo "$d/$name"; return 0; }; done
  ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n {print $NF; exit}'
}
icd_library() { sed -nE 's/.*"library_path"[[:space:]]*:[[:space:]]*"([^"]+)".*/\1/p' "$1" | head -n 1; }

echo "== Vulkan ICD"
icd=
if [ -n "${VK_ICD_FILENAMES:-}" ]; then
  icd=$VK_ICD_FILENAMES
  echo "using VK_ICD_FILENAMES=$icd"
else
  candidates=(/usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json
    /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json
    /usr/local/nvidia/etc/vulkan/icd.d/nvidia_icd.json)
  [ -n "${VK_DRIVER_FILES:-}" ] && IFS=: read -r -a extra <<<"$VK_DRIVER_FILES" && candidates=("${extra[@]}" "${candidates[@]}")
  # The EGL vendor file's folder sits next to the Vulkan one under the same prefix.
  if [ -n "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ]; then
    egl_dir=$(dirname "${__EGL_VENDOR_LIBRARY_FILENAMES%%:*}")
    candidates+=("$egl_dir/../../vulkan/icd.d/nvidia_icd.json")
  fi
  for c in "${candidates[@]}"; do [ -f "$c" ] && { icd=$c; break; }; done
  if [ -z "$icd" ]; then
    icd=$(find /usr /etc /opt -maxdepth 6 -name 'nvidia_icd*.json' 2>/dev/null | head -n 1)
  fi
  nvlib=$(find_lib libGLX_nvidia.so.0)
  [ -z "$nvlib" ] && nvlib=$(find_lib libEGL_nvidia.so.0)
  if [ -n "$icd" ]; then
    echo "found $icd:"
    cat "$icd"
    lib=$(icd_library "$icd")
    case "$lib" in
      /*) [ -e "$lib" ] || lib_missing=1 ;;
      *) [ -n "$(find_lib "$lib")" ] || lib_missing=1 ;;
    esac
    if [ -n "${lib_missing:-}" ] && [ -n "$nvlib" ]; then
      echo "its library $lib is not where the loader looks; using $nvlib"
      icd=
    fi
  fi
  if [ -z "$icd" ] && [ -n "$nvlib" ]; then
    icd=$WORK/nvidia_icd.json
    printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3.0"}}\n' "$nvlib" >"$icd"
    echo "wrote $icd for $nvlib"
  fi
  if [ -z "$icd" ]; then
    echo "NO NVIDIA Vulkan driver found: no nvidia_icd.json and no libGLX_nvidia.so.0. The container lacks the"
    echo "driver's graphics capability: start it with NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics (or all)."
  fi
fi
[ -n "$icd" ] && export VK_ICD_FILENAMES=$icd VK_DRIVER_FILES=$icd
export LD_LIBRARY_PATH=$WORK/lib:$WORK/lib/cxx:/usr/local/nvidia/lib64:/usr/local/nvidia/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# dawn.node needs glibc 2.34: on older hosts run Node under the carried glibc's loader.
RUN=("$WORK/node")
if [ -n "${GPU_CHECK_PACKED_GLIBC:-}" ] || { [ -n "$glibc" ] && [ "$(printf '%s\n2.34\n' "$glibc" | sort -V | head -n 1)" != 2.34 ]; }; then
  echo "running Node with the packed glibc (host glibc ${glibc:-unknown}; dawn.node needs 2.34)"
  RUN=("$WORK/lib/glibc/ld-linux-x86-64.so.2" --library-path "$WORK/lib/glibc:$LD_LIBRARY_PATH" "$WORK/node")
fi
echo "node $("${RUN[@]}" --version)"

echo "== train: 32-dim operator, batch $BATCH (webgpu programs and tfjs ops $STEPS steps each, wasm $WASM_STEPS steps, <= ${BUDGET}s each)"
mkdir -p "$(dirname "$RESULT")"
(cd "$WORK/app" && timeout $((3 * BUDGET + 150)) "${RUN[@]}" gpu-train.mjs --out "$RESULT" \
  --steps "$STEPS" --wasm-steps "$WASM_STEPS" --budget-s "$BUDGET" --batch "$BATCH" >"$WORK/summary.json")
rc=$?
echo "== result ($RESULT, exit $rc)"
if [ -f "$RESULT" ]; then
  # shellcheck disable=SC2016 # JavaScript, not shell
  "${RUN[@]}" -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
    console.log("adapter:", r.adapter ? `${r.adapter.description} (vendor ${r.adapter.vendor}, ${r.adapter.architecture}${r.adapter.software ? ", SOFTWARE" : ""})` : "none")
    for (const row of r.rows) console.log(row.ok ? `${row.backend}${row.path ? ` (${row.path})` : ""}: ${row.msPerStep.toFixed(1)} ms/step, ${row.gflopPerSec.toFixed(1)} GFLOP/s, ${row.samplesPerSec.toFixed(0)} samples/s, ${row.kernelsPerStep ?? "?"} kernels/step${row.dispatchesPerStep ? `, ${row.dispatchesPerStep} dispatches/step` : ""} over ${row.stepMs.length} steps` : `${row.backend}: FAILED ${row.error}`)
    console.log(`speedup vs wasm: ${r.speedupVsWasm?.toFixed(1) ?? "n/a"}x; first-loss difference webgpu vs wasm: ${r.firstLossDiff ?? "n/a"}`)
  ' "$RESULT"
fi
exit $rc
