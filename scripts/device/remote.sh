#!/usr/bin/env bash
# Runs diffeval's GPU checks ON the GPU machine, from the repository root there:
#   bash scripts/device/remote.sh
# with .device/bundle.tar.xz (scripts/device/pack.sh) and .gl/ (the Vulkan loader and glvnd .debs) carried.
#
# Why a script: the device command line is at most 2000 characters, and that machine has no Node,
# no network and no Vulkan loader; the bundle brings Node, the built project and the fixtures.
#
# What it does, each step under `timeout` within an overall budget (REMOTE_BUDGET_S, default
# 390 s), going on past failures, everything logged to $OUT/remote.log:
#   0. records the machine: nvidia-smi -L, driver, the Vulkan ICD file.
#   1. unpacks the Vulkan loader (dpkg -x into /, ldconfig) and the bundle into $DE (/tmp/de);
#      exports VK_DRIVER_FILES, XDG_RUNTIME_DIR, DIFFEVAL_FIXTURES, DIFFEVAL_CACHE; puts the
#      bundled node first on PATH.
#   2. $OUT/gpu-check.json: pool3 features of the 32 fixture images (protocol clean) on cpu,
#      webgpu (batch 16 and 1), cuda and auto, compared with each other and the reference
#      (scripts/device/check-gpu.ts; tolerance 1e-4).
#   3. $OUT/bench-webgpu.json and $OUT/bench-cpu16.json: `bench/run.js` with BENCH_ONLY=features
#      (BENCH_IMAGES=512) and BENCH_ONLY=sd on webgpu, then on the machine's CPU cores. The WebGPU
#      steps (here and in 4.) are skipped when WebGPU did not start in step 2 (unless
#      REMOTE_FORCE_WEBGPU=1).
#   4. $OUT/cli-fid.json: the CLI end to end, `diffeval fid --json` between the fixture real images
#      and 512 derived images, on webgpu and on cpu.
#   5. $OUT/summary.json and a summary at the end of the output.
# Six files in $OUT, with remote.log (the device tool brings back at most 8).
#
# DEVICE_DRY=1 runs the same steps on a machine without a GPU (here, to test the bundle): the
# loader is unpacked under $DE instead of /, WebGPU is expected to fail and is recorded as such,
# and the image counts are smaller (BENCH_IMAGES=32 unless set).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/diffeval-device-out}
DE=${DE:-/tmp/de}
DRY=${DEVICE_DRY:-0}
if [ "$DRY" != 1 ] && ! command -v nvidia-smi >/dev/null; then
  echo "no nvidia-smi here: running as DEVICE_DRY=1 (nothing is unpacked into /)" >&2
  DRY=1
fi
if [ "$DRY" = 1 ]; then
  BUDGET_S=${REMOTE_BUDGET_S:-900}
  IMAGES=${BENCH_IMAGES:-32}
else
  BUDGET_S=${REMOTE_BUDGET_S:-390}
  IMAGES=${BENCH_IMAGES:-512}
fi
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
DEADLINE=$(($(date +%s) + BUDGET_S))
declare -a STEPS=()

# run_step NAME MAX_SECONDS [--stdout FILE] COMMAND...: runs COMMAND under `timeout`, capped by
# what is left of the budget; records "NAME: ok|rc N|TIMEOUT|skipped (seconds)".
run_step() {
  local name=$1 max=$2 out=""
  shift 2
  if [ "$1" = --stdout ]; then out=$2; shift 2; fi
  local left=$((DEADLINE - $(date +%s)))
  if [ "$left" -lt 20 ]; then
    echo "=== $name: SKIPPED (${left}s of the budget left)"
    STEPS+=("$name: skipped (budget)")
    return 0
  fi
  local t=$((max < left - 5 ? max : left - 5)) t0 rc status
  echo "=== $name (timeout ${t}s): $*"
  t0=$(date +%s.%N)
  if [ -n "$out" ]; then
    timeout -k 10 "$t" "$@" >"$out"
  else
    timeout -k 10 "$t" "$@"
  fi
  rc=$?
  local dt
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) status=ok ;;
    124 | 137) status="TIMEOUT after ${t}s" ;;
    *) status="FAILED (rc $rc)" ;;
  esac
  echo "=== $name: $status in ${dt}s"
  STEPS+=("$name: $status in ${dt}s")
  return 0
}

# merge_json OUT KEY=FILE...: one JSON object {KEY: FILE's object ..., machine: ...}; a missing or
# broken FILE becomes {"error": "..."} (the step's output is in the log).
merge_json() {
  local out=$1
  shift
  node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    const [out, ...pairs] = process.argv.slice(1);
    const merged = {};
    for (const pair of pairs) {
      const [key, file] = [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)];
      try {
        const obj = JSON.parse(readFileSync(file, "utf8"));
        if (obj.machine && !merged.machine) merged.machine = obj.machine;
        merged[key] = typeof obj[key] === "object" && obj[key] !== null ? obj[key] : obj;
      } catch (e) {
        merged[key] = { error: `no result (${String(e.message).split("\n")[0]}): see remote.log` };
      }
    }
    writeFileSync(out, JSON.stringify(merged, null, 2) + "\n");
  ' "$out" "$@" || echo "merge_json $out failed"
}

main() {
  echo "=== diffeval GPU checks, $(date -u +%FT%TZ), budget ${BUDGET_S}s, DEVICE_DRY=$DRY, OUT=$OUT"
  uname -a
  echo "cpus: $(nproc), memory: $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm --format=csv
  else
    echo "nvidia-smi: not found"
  fi

  # 1. Vulkan loader, ICD, bundle.
  echo "=== setup"
  local debs=(.gl/*.deb)
  if [ ! -e "${debs[0]}" ]; then
    echo "no .gl/*.deb: carry .gl (scripts/device/pack.sh downloads the loader debs into it)"
  elif [ "$DRY" = 1 ]; then
    mkdir -p "$DE.gl"
    for f in "${debs[@]}"; do dpkg -x "$f" "$DE.gl"; done
    export LD_LIBRARY_PATH="$DE.gl/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "dry run: Vulkan loader unpacked under $DE.gl (LD_LIBRARY_PATH), not into /"
  else
    for f in "${debs[@]}"; do
      if command -v dpkg >/dev/null; then dpkg -x "$f" /; else (cd / && ar p "$OLDPWD/$f" data.tar.xz | tar -xJf -); fi
    done
    ldconfig
  fi
  # The driver's own libraries (libGLX_nvidia.so.0, which the ICD file names), if the image keeps
  # them outside the ld.so cache.
  local d
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    if [ -d "$d" ] && ! ldconfig -p | grep -q "$d/"; then export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
  done
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  ldconfig -p | grep -E 'libvulkan\.so\.1' || echo "libvulkan.so.1: not in the ld.so cache"
  local icd=""
  for c in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$c" ]; then icd=$c && break; fi
  done
  [ -n "$icd" ] || icd=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia_icd*.json' 2>/dev/null | head -1)
  if [ -n "$icd" ]; then
    export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd # the second for loaders older than 1.3.207
    echo "VK_DRIVER_FILES=$icd: $(tr -d '\n ' <"$icd" | head -c 300)"
  else
    echo "no NVIDIA Vulkan ICD file found: WebGPU will find no adapter"
  fi
  export XDG_RUNTIME_DIR=/tmp

  if [ ! -f .device/bundle.tar.xz ]; then
    echo "no .device/bundle.tar.xz: run scripts/device/pack.sh here first and carry it"
    return 1
  fi
  rm -rf "$DE" && mkdir -p "$DE"
  run_step unpack 120 tar -C "$DE" --ignore-zeros -xJf .device/bundle.tar.xz
  if ! "$DE/bin/node" --version; then
    echo "the bundled node does not run here:"
    ldd "$DE/bin/node"
    return 1
  fi
  head -3 "$DE/BUNDLE.txt"
  export PATH="$DE/bin:$PATH"
  export DIFFEVAL_FIXTURES="$DE/fixtures" DIFFEVAL_CACHE="$DE/.cache/diffeval"
  unset DIFFEVAL_WEIGHTS
  cd "$DE"

  # 2. GPU vs CPU features (converts the fixture weights to .cache/test-models/*.onnx first).
  local allow=0
  [ "$DRY" = 1 ] && allow=1
  run_step gpu-check 150 env CHECK_ALLOW_NO_GPU=$allow CHECK_TIMEOUT_S=60 node .bench-build/scripts/device/check-gpu.js --out "$OUT/gpu-check.json"

  # WebGPU steps only if the check got WebGPU started (a provider that failed or hung there would
  # fail or hang again, eating the budget of the CPU steps).
  local webgpu
  webgpu=$(node -e '
    try {
      const runs = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).runs ?? [];
      console.log(runs.some((r) => r.requested === "webgpu" && r.ok) ? "yes" : "no");
    } catch { console.log("unknown"); }' "$OUT/gpu-check.json")
  local devs="webgpu cpu"
  if [ "$webgpu" = no ] && [ "${REMOTE_FORCE_WEBGPU:-0}" != 1 ]; then
    devs=cpu
    echo "=== WebGPU did not start in gpu-check: its bench and CLI steps are skipped"
    STEPS+=("webgpu bench + cli: skipped (WebGPU did not start in gpu-check)")
  fi

  # 3. Benchmarks: WebGPU, then the CPU of the same machine; features and sd run separately (so
  # one failing does not lose the other's numbers) and are merged into one file per device.
  mkdir -p "$DE/results"
  local dev
  for dev in $devs; do
    run_step "bench-features-$dev" 120 env BENCH_DEVICE=$dev BENCH_ONLY=features BENCH_IMAGES="$IMAGES" BENCH_OUT="$DE/results/bench-features-$dev.json" node .bench-build/bench/run.js
    run_step "bench-sd-$dev" 90 env BENCH_DEVICE=$dev BENCH_ONLY=sd BENCH_OUT="$DE/results/bench-sd-$dev.json" node .bench-build/bench/run.js
  done
  merge_json "$OUT/bench-webgpu.json" features="$DE/results/bench-features-webgpu.json" sd="$DE/results/bench-sd-webgpu.json"
  merge_json "$OUT/bench-cpu16.json" features="$DE/results/bench-features-cpu.json" sd="$DE/results/bench-sd-cpu.json"

  # 4. The CLI end to end: fixture real images vs a derived set, on webgpu and on cpu.
  local weights=.cache/test-models/random-fid-inception.onnx
  [ -f "$weights" ] || weights=.cache/test-models/random-fid-inception.pth
  run_step make-images 60 node .bench-build/scripts/device/check-gpu.js --make-images "$DE/e2e-fake" "$IMAGES"
  for dev in $devs; do
    run_step "cli-fid-$dev" 75 --stdout "$DE/results/cli-fid-$dev.json" node dist/cli/bin.js fid --real "$DE/fixtures/images/real" --fake "$DE/e2e-fake" --weights "$weights" --device "$dev" --no-cache --json
    cat "$DE/results/cli-fid-$dev.json"
  done
  merge_json "$OUT/cli-fid.json" webgpu="$DE/results/cli-fid-webgpu.json" cpu="$DE/results/cli-fid-cpu.json"
  return 0
}

summary() {
  echo "=== steps"
  printf '  %s\n' "${STEPS[@]}"
  # The numbers that matter, from the JSON files (with the bundled node, if it got unpacked).
  local node_bin=node
  [ -x "$DE/bin/node" ] && node_bin="$DE/bin/node"
  STEPS_TEXT=$(printf '%s\n' "${STEPS[@]}") "$node_bin" --input-type=module -e '
    import { readFileSync, writeFileSync, existsSync } from "node:fs";
    const out = process.env.OUT;
    const read = (f) => { try { return JSON.parse(readFileSync(`${out}/${f}`, "utf8")); } catch { return undefined; } };
    const pickNums = (o) => o && Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v !== "object"));
    const check = read("gpu-check.json"), bw = read("bench-webgpu.json"), bc = read("bench-cpu16.json");
    const s = {
      steps: process.env.STEPS_TEXT.trim().split("\n"),
      gpu_check: check?.summary,
      gpu_check_runs: check?.runs?.map((r) => ({ spec: r.spec, ok: r.ok, device: r.device, warm_img_per_s: r.warm_img_per_s, max_abs_diff_vs_cpu: r.max_abs_diff_vs_cpu, max_abs_diff_vs_reference: r.max_abs_diff_vs_reference, error: r.error?.slice(0, 200) })),
      bench_webgpu: { features: pickNums(bw?.features), sd: pickNums(bw?.sd), machine: bw?.machine },
      bench_cpu: { features: pickNums(bc?.features), sd: pickNums(bc?.sd), machine: bc?.machine },
      cli_fid: Object.fromEntries(Object.entries(read("cli-fid.json") ?? {}).map(([k, v]) => [k, v.error ? v : { fid: v.fid, seconds: v.seconds, device: v.device, n_real: v.n_real, n_fake: v.n_fake }])),
    };
    writeFileSync(`${out}/summary.json`, JSON.stringify(s, null, 2) + "\n");
    console.log(JSON.stringify(s, null, 1));
  ' || echo "(no summary: $node_bin failed)"
  ls -la "$OUT"
}

export OUT
{
  main
  summary
} 2>&1 | tee "$OUT/remote.log"
