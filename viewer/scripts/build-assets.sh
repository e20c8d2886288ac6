#!/usr/bin/env bash
# Builds the viewer's browser side into target/site, where the `viewer` binary serves it from:
#   target/site/pkg/viewer.js, viewer_bg.wasm  (the hydrate bundle, via wasm-bindgen)
#   target/site/pkg/viewer.css, target/site/favicon.svg
# Needs only crates.io: installs wasm-bindgen-cli at the version pinned in viewer/Cargo.toml when
# missing; runs wasm-opt when a good one is on PATH (never Debian's binaryen 108, whose output
# breaks hydration), and does without it otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."

WBG_VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' viewer/Cargo.toml)
PROFILE=${VIEWER_WASM_PROFILE:-wasm-release}
SITE=${VIEWER_SITE_DIR:-target/site}
CARGO=${CARGO:-cargo}
export PATH="$HOME/.cargo/bin:$PATH"

if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WBG_VERSION"; then
  echo "viewer: installing wasm-bindgen-cli $WBG_VERSION (once; about 2 minutes)"
  "$CARGO" install wasm-bindgen-cli --version "$WBG_VERSION"
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

# `--crate-type cdylib` here, not in Cargo.toml: host builds of the workspace never link a cdylib.
"$CARGO" rustc -p viewer --lib --crate-type cdylib --target wasm32-unknown-unknown \
  --no-default-features --features hydrate --profile "$PROFILE"

mkdir -p "$SITE/pkg"
wasm-bindgen --target web --no-typescript --out-name viewer --out-dir "$SITE/pkg" \
  "target/wasm32-unknown-unknown/$PROFILE/viewer.wasm"

opt=""
for c in node_modules/.bin/wasm-opt "$(command -v wasm-opt || true)"; do
  [ -n "$c" ] && [ -x "$c" ] || continue
  v=$("$c" --version 2>/dev/null | grep -o '[0-9]\+' | head -n1 || echo 0)
  if [ "${v:-0}" -ge 116 ]; then opt=$c; break; fi
done
if [ -n "$opt" ]; then
  "$opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    -o "$SITE/pkg/viewer_bg.opt.wasm" "$SITE/pkg/viewer_bg.wasm"
  mv "$SITE/pkg/viewer_bg.opt.wasm" "$SITE/pkg/viewer_bg.wasm"
fi

cp viewer/style/viewer.css "$SITE/pkg/viewer.css"
cp viewer/public/* "$SITE/"
echo "viewer: assets in $SITE ($(du -k "$SITE/pkg/viewer_bg.wasm" | cut -f1) KiB wasm${opt:+, wasm-opt: $opt})"
