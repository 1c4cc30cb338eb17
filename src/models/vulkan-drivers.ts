/**
 * The Vulkan drivers (ICDs) that the Vulkan loader would load on Linux, found the way it finds
 * them, and which of them are software renderers.
 *
 * Dawn (the WebGPU implementation inside onnxruntime-node's WebGPU provider) runs on Vulkan on
 * Linux, so these manifests decide which WebGPU adapters can exist. Discovery follows the loader's
 * documented rules (KhronosGroup/Vulkan-Loader, docs/LoaderDriverInterface.md, "Driver Discovery
 * on Linux"): VK_DRIVER_FILES, or its older name VK_ICD_FILENAMES, replaces the search with a
 * colon-separated list of manifest files or folders; otherwise the loader reads `vulkan/icd.d`
 * under $XDG_CONFIG_HOME, $XDG_CONFIG_DIRS, /etc, $XDG_DATA_HOME and $XDG_DATA_DIRS, and
 * VK_ADD_DRIVER_FILES adds entries to that search. The loader's VK_LOADER_DRIVERS_SELECT/DISABLE
 * filters are not replayed here: a driver they hide merely fails to show up in the probe.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Env } from "./cache.js";

export interface VulkanDriver {
  /** The manifest (ICD JSON) file. */
  manifest: string;
  /** Its `ICD.library_path`: an absolute path, a path relative to the manifest, or a bare name. */
  library: string;
  /** A short name for messages: the manifest's file name without `_icd`, arch and `.json`. */
  name: string;
  /** Set for a software renderer: what to call it (lavapipe, SwiftShader). */
  software?: string;
}

/**
 * Software Vulkan drivers, told apart by the library their manifest loads. This is the one signal
 * that is there before any adapter is created and needs no extra tool: Dawn prints nothing about
 * the adapter it picks (only warnings about the ones it rejects, e.g. lavapipe's missing
 * "shaderUniform*ArrayDynamicIndexing"), onnxruntime-node does not expose the adapter info, and
 * `vulkaninfo` (whose deviceType CPU would say it directly) is in vulkan-tools, which users need
 * not have. The names are the upstream ones: Mesa builds lavapipe (its Vulkan driver on llvmpipe)
 * as libvulkan_lvp.so with lvp_icd.<arch>.json; SwiftShader as libvk_swiftshader.so with
 * vk_swiftshader_icd.json (Chromium ships it next to its binary, outside the loader's search).
 */
const SOFTWARE_LIBRARIES: readonly { pattern: RegExp; label: string }[] = [
  { pattern: /^libvulkan_lvp\b/, label: "lavapipe" },
  { pattern: /^libvk_swiftshader\b/, label: "SwiftShader" },
];

/** The drivers the loader would consider under `env`, in search order, each manifest once. */
export function vulkanDrivers(env: Env = process.env): VulkanDriver[] {
  const seen = new Set<string>();
  const out: VulkanDriver[] = [];
  for (const manifest of manifestFiles(env)) {
    // A listed manifest that is not there is skipped by the loader too ("Failed to open JSON file").
    if (seen.has(manifest) || !isFile(manifest)) continue;
    seen.add(manifest);
    out.push(describeDriver(manifest));
  }
  return out;
}

/** The label of a software driver, from its library's file name; undefined for anything else. */
export function softwareLabel(library: string): string | undefined {
  const base = path.basename(library);
  return SOFTWARE_LIBRARIES.find((s) => s.pattern.test(base))?.label;
}

/** "a, b, c" with at most `max` names, then "+N more": driver lists stay one short phrase. */
export function driverNames(drivers: readonly VulkanDriver[], max = 3): string {
  const names = [...new Set(drivers.map((d) => d.software ?? d.name))];
  return names.length <= max ? names.join(", ") : `${names.slice(0, max).join(", ")} +${names.length - max} more`;
}

function manifestFiles(env: Env): string[] {
  const override = env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES;
  if (override) return expandEntries(override);
  const added = env.VK_ADD_DRIVER_FILES ? expandEntries(env.VK_ADD_DRIVER_FILES) : [];
  return [...added, ...searchFolders(env).flatMap(jsonFilesIn)];
}

/** The loader's default search folders on Linux, `<base>/vulkan/icd.d` for each base. */
function searchFolders(env: Env): string[] {
  const home = env.HOME || os.homedir();
  const list = (v: string | undefined, fallback: string) => (v || fallback).split(":").filter(Boolean);
  const bases = [
    env.XDG_CONFIG_HOME || path.join(home, ".config"),
    ...list(env.XDG_CONFIG_DIRS, "/etc/xdg"),
    "/etc",
    env.XDG_DATA_HOME || path.join(home, ".local", "share"),
    ...list(env.XDG_DATA_DIRS, "/usr/local/share:/usr/share"),
  ];
  return bases.map((b) => path.join(b, "vulkan", "icd.d"));
}

/** Entries of a VK_*_FILES variable: files as they are, folders as their .json files. */
function expandEntries(value: string): string[] {
  return value
    .split(":")
    .filter(Boolean)
    .flatMap((entry) => (isDirectory(entry) ? jsonFilesIn(entry) : [path.resolve(entry)]));
}

function jsonFilesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A manifest that cannot be parsed is kept (as a non-software driver): the probe will tell. */
function describeDriver(manifest: string): VulkanDriver {
  const name = path.basename(manifest).replace(/\.json$/, "").replace(/\.(x86_64|i686|aarch64|armv7l|riscv64)$/, "").replace(/_icd$/, "");
  let library = "";
  try {
    const icd = (JSON.parse(readFileSync(manifest, "utf8")) as { ICD?: { library_path?: unknown } }).ICD;
    if (typeof icd?.library_path === "string") library = icd.library_path;
  } catch {
    // unreadable or not JSON: the loader skips it too
  }
  const software = softwareLabel(library);
  return { manifest, library, name, ...(software ? { software } : {}) };
}
