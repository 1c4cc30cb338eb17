/** `diffeval doctor [--json] [--verify]`: what this machine can run and why not, for bug reports. */
import { Command } from "commander";
import { doctorReport, type DoctorReport, type ProviderFacts, type WeightFacts } from "../pipeline/doctor.js";

export function doctorCommand(): Command {
  return new Command("doctor")
    .description("what this machine can run and why not: Node, onnxruntime, each device, sharp, the cache (paste it into bug reports)")
    .option("--json", "one JSON object instead of text")
    .option("--verify", "hash cached weights that have no sha256 memo yet (a 95 MB file takes about a second)")
    .action(async (flags: { json?: boolean; verify?: boolean }) => {
      const report = await doctorReport({ verify: flags.verify });
      process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : doctorText(report));
    });
}

/** Label column width: wide enough for `libcublasLt.so.12`. */
const LABEL = 20;
const row = (label: string, value: string, indent = ""): string => `${`${indent}${label}`.padEnd(LABEL)}${value}`;

export function doctorText(r: DoctorReport): string {
  const { cuda, webgpu } = r.providers;
  const lines = [
    row("diffeval", r.diffeval),
    row("node", `${r.node.version} (${r.node.platform} ${r.node.arch})`),
    row("onnxruntime-node", r.onnxruntime.version ?? "not installed"),
    row("sharp", `${r.sharp.version ?? "?"} (libvips ${r.sharp.libvips ?? "?"})`),
    row("device cpu", "available"),
    row("device cuda", verdict(cuda)),
  ];
  if (cuda.provider_library) lines.push(row("provider", `${cuda.provider_library.present ? "present" : "missing"}: ${cuda.provider_library.path}`, "  "));
  for (const [lib, where] of Object.entries(cuda.libraries)) lines.push(row(lib, where ?? "not found", "  "));
  if (process.platform === "linux") lines.push(row("nvidia driver", cuda.nvidia_driver ?? "none", "  "));
  lines.push(row("device webgpu", verdict(webgpu)));
  if (webgpu.vulkan_loader !== null) lines.push(row("vulkan loader", webgpu.vulkan_loader ? "libvulkan.so.1 found" : "libvulkan.so.1 not found", "  "));
  for (const a of webgpu.adapters) lines.push(row("vulkan driver", `${a.name} (${a.software ? "software" : "hardware"}) ${a.manifest}`, "  "));
  lines.push(row("cache", r.cache.dir));
  if (r.cache.weights.length === 0) lines.push(row("weights", "none (`diffeval model fetch` downloads the FID Inception)", "  "));
  for (const w of r.cache.weights) lines.push(row("weights", weightLine(w), "  "));
  lines.push(row("cuda install", r.cuda_install));
  return `${lines.join("\n")}\n`;
}

function verdict(p: ProviderFacts): string {
  return p.available ? "available" : `not available: ${p.reason}`;
}

function weightLine(w: WeightFacts): string {
  const mb = `${(w.bytes / 1e6).toFixed(1)} MB`;
  const status = w.status === "unverified" ? "unverified (no sha256 memo; --verify hashes it)" : w.status;
  return `${w.path}  ${mb}  ${status}${w.sha256 ? `  sha256 ${w.sha256.slice(0, 12)}` : ""}`;
}
