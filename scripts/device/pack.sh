#!/usr/bin/env bash
# Packs everything the GPU machine needs to run diffeval into .device/bundle.tar.xz.
#
# Why: the GPU machine (one NVIDIA H100/H200, x86-64, 16 cores) gets only a copy of the working
# tree plus up to 8 carried ignored paths, 64 MiB in all, and has no Node, no network and no
# Vulkan loader. So we carry one tarball holding a Node binary, the built project, the run-time
# node_modules and the fixtures the checks read, plus the Vulkan loader .deb in .gl/.
# scripts/device/remote.sh unpacks and runs it there; README.md "GPU checks" has the run call.
#
# Steps (idempotent: rerun after any change to src/, bench/, scripts/ or test/helpers/):
#   1. build: `npm run build` (dist/) and `npx tsc -p tsconfig.bench.json` (.bench-build/).
#      Type errors stop the pack unless PACK_ALLOW_TS_ERRORS=1 (tsc still emits JavaScript).
#   2. assemble .device/bundle/:
#      bin/node          a stripped copy of `node` (the debug info is a sixth of it)
#      package.json      also how test/helpers/fixtures.ts finds the project root
#      dist/, .bench-build/   the built JavaScript, without source maps and declarations
#      node_modules/     the production dependency closure (scripts/device/deps.mjs), pruned:
#                        onnxruntime-node keeps only linux/x64; no .map/.d.ts/.ts/.md files; no
#                        protobufjs/cli (pbjs, 16 MB); vega and vega-lite (only the report plots
#                        use them, the CLI imports them at start-up) are replaced by stubs that
#                        throw when called, unless PACK_FULL_VEGA=1
#      fixtures/         images/real, reference/{feats_clean_real.npy,expected.json}, and sd/
#                        (without tokenizer.json, which nothing reads); PACK_SD=0 leaves sd/ out
#      .cache/test-models/random-fid-inception.pth   the fixture weights, gunzipped where
#                        test/helpers/model.ts looks first (it checks their sha256) and converts
#                        them to ONNX on the device; xz packs the raw .pth smaller than the .gz
#      Then it checks that the bundle runs on its own: its node, from a copy outside the repo.
#   3. write .device/bundle.tar.xz: three xz streams in one file, each with the filter that packs
#      its files best (ELF binaries, float32 weights, the rest); unpack with
#      `tar --ignore-zeros -xJf .device/bundle.tar.xz`.
#   4. make sure .gl/ holds the Vulkan loader and glvnd .debs (Debian bookworm, amd64).
#   5. print the sizes and what a device call carries; fail above the 64 MiB limit.
#
# Environment: DIFFEVAL_FIXTURES (default ../shared/fixtures), NODE_BIN (default `command -v node`),
# PACK_SKIP_BUILD=1 (use dist/ and .bench-build/ as they are), PACK_XZ_PRESET (default 9; 6 is
# faster and about 1 MB bigger), PACK_SD=0, PACK_FULL_VEGA=1, PACK_DROP_DEPS (see deps.mjs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FIXTURES=${DIFFEVAL_FIXTURES:-$ROOT/../shared/fixtures}
NODE_BIN=${NODE_BIN:-$(command -v node)}
PRESET=${PACK_XZ_PRESET:-9}
BUNDLE=.device/bundle
TARBALL=.device/bundle.tar.xz
LIMIT_MIB=64

say() { printf '[pack] %s\n' "$*" >&2; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
bytes() { du -sb "$@" | awk '{ s += $1 } END { print s + 0 }'; }

[ -d "$FIXTURES/images/real" ] || { say "fixtures not found at $FIXTURES (set DIFFEVAL_FIXTURES)"; exit 1; }
[ -x "$NODE_BIN" ] || { say "no node binary at '$NODE_BIN' (set NODE_BIN)"; exit 1; }
[ "$(uname -m)" = x86_64 ] || { say "this machine is $(uname -m): the bundle must be x86-64 (node, onnxruntime, sharp)"; exit 1; }

# 1. Build.
if [ "${PACK_SKIP_BUILD:-0}" != 1 ]; then
  build_failed=0
  say "npm run build"
  npm run --silent build || build_failed=1
  say "npx tsc -p tsconfig.bench.json"
  npx tsc -p tsconfig.bench.json || build_failed=1
  if [ "$build_failed" = 1 ]; then
    if [ "${PACK_ALLOW_TS_ERRORS:-0}" = 1 ]; then
      say "WARNING: type errors above; packing what tsc emitted anyway (PACK_ALLOW_TS_ERRORS=1)"
    else
      say "build failed (PACK_ALLOW_TS_ERRORS=1 packs what tsc emitted anyway)"
      exit 1
    fi
  fi
fi
for f in .bench-build/scripts/device/check-gpu.js .bench-build/bench/run.js dist/cli/bin.js; do
  [ -f "$f" ] || { say "$f missing: did the build run?"; exit 1; }
done

# 2. Assemble .device/bundle/ from scratch.
[ -d "$BUNDLE" ] && chmod -R u+w "$BUNDLE"
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/fixtures/images" "$BUNDLE/fixtures/reference" "$BUNDLE/.cache/test-models"

say "node: $NODE_BIN ($("$NODE_BIN" --version))"
cp "$NODE_BIN" "$BUNDLE/bin/node"
if command -v strip >/dev/null; then strip --strip-all "$BUNDLE/bin/node"; fi

cp package.json "$BUNDLE/"
copy_js() { mkdir -p "$BUNDLE/$1" && tar -C "$1" --exclude='*.map' --exclude='*.d.ts' -cf - . | tar -C "$BUNDLE/$1" -xf -; }
copy_js dist
copy_js .bench-build

# node_modules: the production closure, pruned of what Node never loads here.
vega_deps=""
[ "${PACK_FULL_VEGA:-0}" = 1 ] || vega_deps="vega vega-lite"
deps=$(PACK_DROP_DEPS="${PACK_DROP_DEPS:-} $vega_deps" node scripts/device/deps.mjs "$ROOT")
for d in $deps; do
  mkdir -p "$BUNDLE/$(dirname "$d")"
  cp -a "$d" "$BUNDLE/$d"
done
ortbin="$BUNDLE/node_modules/onnxruntime-node/bin/napi-v6"
[ -f "$ortbin/linux/x64/libonnxruntime.so.1" ] || { say "onnxruntime-node has no linux/x64 binary"; exit 1; }
find "$ortbin" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +
find "$ortbin/linux" -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} +
rm -rf "$BUNDLE/node_modules/protobufjs/cli" "$BUNDLE/node_modules/sharp/src"
find "$BUNDLE/node_modules" -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.md' -o -name '*.markdown' \) -delete
find "$BUNDLE/node_modules" -type d -empty -delete
if [ -n "$vega_deps" ]; then
  # Stubs with the names the built code imports from them (`import { a, b } from "vega"`).
  for pkg in $vega_deps; do
    names=$(grep -rhoE "import \{[^}]*\} from \"$pkg\"" --include='*.js' dist .bench-build |
      sed -E 's/import \{([^}]*)\}.*/\1/' | tr ',' '\n' | sed -E 's/^ *(type +)?//; s/ +as .*//; s/ *$//' |
      grep -v '^type ' | grep -v '^$' | sort -u || true)
    mkdir -p "$BUNDLE/node_modules/$pkg"
    printf '{ "name": "%s", "version": "0.0.0-stub", "type": "module", "exports": "./index.js" }\n' "$pkg" >"$BUNDLE/node_modules/$pkg/package.json"
    {
      echo "// Stub: $pkg is left out of the GPU bundle (scripts/device/pack.sh); report plots throw."
      echo "function notBundled() { throw new Error(\"$pkg is not in the GPU bundle (PACK_FULL_VEGA=1 packs it)\"); }"
      for n in $names; do echo "export const $n = notBundled;"; done
    } >"$BUNDLE/node_modules/$pkg/index.js"
  done
fi

# Fixtures (DIFFEVAL_FIXTURES points here on the device).
cp "$FIXTURES/README.md" "$BUNDLE/fixtures/"
cp -a "$FIXTURES/images/real" "$BUNDLE/fixtures/images/"
cp "$FIXTURES/reference/feats_clean_real.npy" "$FIXTURES/reference/expected.json" "$BUNDLE/fixtures/reference/"
if [ "${PACK_SD:-1}" = 1 ]; then
  cp -a "$FIXTURES/sd" "$BUNDLE/fixtures/"
  chmod -R u+w "$BUNDLE/fixtures/sd"
  rm -f "$BUNDLE/fixtures/sd/sd-tiny/tokenizer/tokenizer.json" # the CLIP tokenizer reads vocab.json + merges.txt
fi
gunzip -c "$FIXTURES/weights/random-fid-inception.pth.gz" >"$BUNDLE/.cache/test-models/random-fid-inception.pth"
chmod -R u+w,go+rX "$BUNDLE" # the shared fixtures are read-only; the unpacked copy need not be

{
  echo "diffeval GPU bundle, packed $(date -u +%FT%TZ)"
  echo "node $("$BUNDLE/bin/node" --version), onnxruntime-node $(node -p 'require("./node_modules/onnxruntime-node/package.json").version'), sharp $(node -p 'require("./node_modules/sharp/package.json").version')"
  echo "vega: $([ -n "$vega_deps" ] && echo "stubs ($vega_deps)" || echo full); sd fixture: $([ "${PACK_SD:-1}" = 1 ] && echo yes || echo no)"
  echo "git status --short:"
  git status --short 2>/dev/null | sed 's/^/  /' || true
  echo "node_modules:"
  for d in $deps; do echo "  $d"; done
} >"$BUNDLE/BUNDLE.txt"

# Does it run on its own? Its node, from a copy outside the repo (no node_modules above it).
say "self-check: the bundle's node loads onnxruntime, sharp, the CLI and the bench from a copy in /tmp"
selfcheck=$(mktemp -d)
cp -al "$BUNDLE/." "$selfcheck/" 2>/dev/null || cp -a "$BUNDLE/." "$selfcheck/"
(
  cd "$selfcheck"
  run() { env -i PATH=/usr/bin:/bin HOME="$selfcheck" "$@"; }
  # run.js imports every bench (onnxruntime, sharp, the SD pipeline, the test helpers); none runs.
  run BENCH_ONLY=none BENCH_OUT="$selfcheck/empty.json" ./bin/node .bench-build/bench/run.js &&
    run ./bin/node dist/cli/bin.js --version >/dev/null &&
    run ./bin/node dist/cli/bin.js fid --help >/dev/null &&
    run DIFFEVAL_FIXTURES="$selfcheck/fixtures" ./bin/node .bench-build/scripts/device/check-gpu.js --make-images "$selfcheck/imgs" 2
) || { rm -rf "$selfcheck"; say "self-check failed: the bundle does not run on its own"; exit 1; }
rm -rf "$selfcheck"

# 3. The tarball: three xz streams in one file (xz -d reads them as one; tar needs --ignore-zeros
# to read past the first part's end marker): the ELF binaries through xz's x86 filter (2 MB
# smaller), the float32 weights and arrays with 4-byte literal positions (lp=2: the SD fixture's
# ONNX files pack 1 MB smaller), the rest plain. Written under a temporary name first.
say "xz preset $PRESET ..."
(cd "$BUNDLE" && find . \( -type f -o -type l \) | sort) >.device/all.list
grep -E '^\./bin/node$|\.so$|\.so\.[0-9.]+$|\.node$' .device/all.list >.device/elf.list || true
grep -E '\.(onnx|pth|npy)$' .device/all.list >.device/float.list || true
grep -vxF -f .device/elf.list -f .device/float.list .device/all.list >.device/rest.list
tarc() { tar -C "$BUNDLE" --owner=0 --group=0 --numeric-owner --no-recursion -cf - -T "$1"; }
{
  tarc .device/elf.list | xz -T0 --x86 --lzma2=preset="$PRESET"
  tarc .device/float.list | xz -T0 --lzma2=preset="$PRESET",lc=1,lp=2,pb=2
  tarc .device/rest.list | xz -T0 --lzma2=preset="$PRESET"
} >"$TARBALL.tmp"
mv "$TARBALL.tmp" "$TARBALL"
rm -f .device/{all,elf,float,rest}.list

# 4. The Vulkan loader for the device (remote.sh runs dpkg -x on it there), and the GL vendor-
#    neutral libraries: the NVIDIA Vulkan driver (libGLX_nvidia.so.0) cannot hand out
#    vkCreateInstance without libGLdispatch (libglvnd0): with the loader alone, Dawn finds "no
#    drivers" (seen on the H200). Downloaded once.
GL_DEBS="libvulkan1 libglvnd0 libegl1 libopengl0 libgl1 libglx0 libgles2"
missing_debs=""
for pkg in $GL_DEBS; do ls .gl/"${pkg}"_*_amd64.deb >/dev/null 2>&1 || missing_debs="$missing_debs $pkg"; done
if [ -n "$missing_debs" ]; then
  say "downloading$missing_debs (amd64) into .gl/"
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download $missing_debs)
fi
git check-ignore -q .gl/x 2>/dev/null || say "WARNING: .gl/ is not ignored by git: add /.gl/ to .gitignore"

# 5. Sizes.
part() { printf '  %-44s %10s\n' "$1" "$(mib "$(bytes "${@:2}")")"; }
say "bundle contents (uncompressed):"
part "bin/node (stripped)" "$BUNDLE/bin/node"
part "node_modules/onnxruntime-node (linux/x64)" "$BUNDLE/node_modules/onnxruntime-node"
part "node_modules/@img (sharp + libvips)" "$BUNDLE/node_modules/@img"
part "node_modules (all)" "$BUNDLE/node_modules"
part "dist + .bench-build" "$BUNDLE/dist" "$BUNDLE/.bench-build"
[ -d "$BUNDLE/fixtures/sd" ] && part "fixtures/sd" "$BUNDLE/fixtures/sd"
part "fixtures/images/real + reference" "$BUNDLE/fixtures/images" "$BUNDLE/fixtures/reference"
part ".cache/test-models (fixture .pth)" "$BUNDLE/.cache"
part "total" "$BUNDLE"
tar_b=$(bytes "$TARBALL")
gl_b=$(bytes .gl)
# The working tree that travels: every file git does not ignore, tracked or not.
tree_b=$(find . -path ./.git -prune -o \( -type f -o -type l \) -print | git check-ignore --stdin -v -n |
  awk -F'\t' '$1 == "::" { print $2 }' | xargs -r -d '\n' du -cb | awk '$2 == "total" { s += $1 } END { print s + 0 }')
total_b=$((tar_b + gl_b + tree_b))
say "carry: $TARBALL $(mib "$tar_b") + .gl $(mib "$gl_b"); working tree $(mib "$tree_b"); a device call sends $(mib "$total_b") of $LIMIT_MIB MiB"
if [ "$total_b" -gt $((LIMIT_MIB * 1048576)) ]; then
  say "ERROR: over the $LIMIT_MIB MiB a device call may send (PACK_SD=0 leaves the SD fixture out)"
  exit 1
elif [ "$total_b" -gt $((60 * 1048576)) ]; then
  say "WARNING: over 60 MiB: little room left under the $LIMIT_MIB MiB limit"
fi
echo "$TARBALL"
