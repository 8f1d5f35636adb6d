#!/usr/bin/env bash
# Vendors jassub (libass as WebAssembly) into web/player/vendor/jassub/, the way
# hls.js is vendored: no build step, so its ES modules' bare imports of its
# dependencies are rewritten to relative paths under deps/. rvfc-polyfill
# (GPL-3.0) is replaced by a stub: the player uses the ASS renderer only where
# the browser has requestVideoFrameCallback itself, and WebVTT elsewhere.
#
#   scripts/vendor-jassub.sh            # the versions below, from the npm registry
set -euo pipefail

JASSUB=2.5.16
ABSLINK=1.3.0
LFA_PONYFILL=1.1.1
THROUGHPUT=1.0.2

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/web/player/vendor/jassub"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

unpack() {  # unpack NAME VERSION -> $work/NAME
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null && mkdir "$1" && tar xzf "$1-$2.tgz" -C "$1" --strip-components=1)
}
for spec in "jassub $JASSUB" "abslink $ABSLINK" "lfa-ponyfill $LFA_PONYFILL" "throughput $THROUGHPUT"; do
  # shellcheck disable=SC2086
  unpack $spec
done

rm -rf "$out"
mkdir -p "$out/worker/renderers" "$out/wasm" "$out/deps/abslink/src" "$out/deps/abslink/adapters" \
  "$out/deps/lfa-ponyfill" "$out/deps/throughput"
d="$work/jassub/dist"
cp "$d/jassub.js" "$d/debug.js" "$d/default.woff2" "$out/"
cp "$d/worker/worker.js" "$d/worker/util.js" "$d/worker/extern-pre-worker.js" "$out/worker/"
cp "$d"/worker/renderers/*.js "$out/worker/renderers/"
cp "$d/wasm/jassub-worker.js" "$d/wasm/jassub-worker.wasm" "$d/wasm/jassub-worker-modern.wasm" "$out/wasm/"
cp "$work/jassub/LICENSE" "$out/LICENSE"
cp "$work/abslink/src/abslink.js" "$work/abslink/src/types.js" "$out/deps/abslink/src/"
cp "$work/abslink/adapters/w3c.js" "$out/deps/abslink/adapters/"
cp "$work/lfa-ponyfill/index.js" "$work/lfa-ponyfill/fonts.json" "$out/deps/lfa-ponyfill/"
cp "$work/throughput/index.js" "$out/deps/throughput/"
cat >"$out/deps/rvfc-polyfill.js" <<'STUB'
// Stands in for rvfc-polyfill: the demo player starts the ASS renderer only
// where HTMLVideoElement.prototype.requestVideoFrameCallback exists.
export {};
STUB

rewrite() {  # rewrite FILE FROM TO...
  local file=$1; shift
  while [ "$#" -gt 0 ]; do
    sed -i "s#from '$1'#from '$2'#g; s#^import '$1';#import '$2';#" "$file"
    shift 2
  done
}
rewrite "$out/jassub.js" rvfc-polyfill ./deps/rvfc-polyfill.js \
  abslink ./deps/abslink/src/abslink.js abslink/w3c ./deps/abslink/adapters/w3c.js
rewrite "$out/debug.js" throughput ./deps/throughput/index.js
rewrite "$out/worker/worker.js" abslink ../deps/abslink/src/abslink.js \
  abslink/w3c ../deps/abslink/adapters/w3c.js lfa-ponyfill ../deps/lfa-ponyfill/index.js
# throughput is CommonJS: one function, exported as the ES default jassub imports.
sed -i 's#^module.exports = function#export default function#' "$out/deps/throughput/index.js"
# No source maps are vendored: drop the comments that would ask for them.
find "$out" -name '*.js' -exec sed -i '/^\/\/# sourceMappingURL=/d' {} +

if grep -rnE "(from|import) '[^./]|module\.exports|require\(" "$out/deps" "$out"/*.js "$out/worker" --include='*.js'; then
  echo "a bare import or CommonJS is left (above): extend the rewrites" >&2
  exit 1
fi
echo "vendored jassub $JASSUB into ${out#"$root"/}"
