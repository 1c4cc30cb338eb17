/**
 * A generator for the sweep's tests: a small PNG whose pixels are a deterministic function of the
 * request (seed, scale, prompt), so two images of one cell differ and the same request always
 * gives the same bytes. It counts calls per request key, can fail chosen requests, can be slow
 * (to abort midway), and honours the abort signal like an HTTP adapter would.
 */
import sharp from "sharp";
import type { GenerationRequest, Generator } from "../../src/generators/generator.js";
import { mulberry32 } from "../../src/random/mulberry32.js";

export interface FakeGenerator extends Generator {
  /** Calls per request key (`prompt|negative|cfg|seed`), failed ones included. */
  calls: Map<string, number>;
  readonly totalCalls: number;
  /** Requests whose image was returned. */
  readonly completed: number;
}

export interface FakeOptions {
  concurrency?: number;
  delayMs?: number;
  /** Fails every request for which this returns true. */
  fail?: (req: GenerationRequest) => boolean;
  size?: number;
}

export function requestKey(req: GenerationRequest): string {
  return `${req.prompt}|${req.negativePrompt}|${req.cfgScale}|${req.seed}|${JSON.stringify(req.extra)}`;
}

export function createFakeGenerator(opts: FakeOptions = {}): FakeGenerator {
  const calls = new Map<string, number>();
  let total = 0;
  let completed = 0;
  return {
    name: "fake",
    concurrency: opts.concurrency ?? 1,
    calls,
    get totalCalls() {
      return total;
    },
    get completed() {
      return completed;
    },
    async generate(req, signal) {
      const key = requestKey(req);
      calls.set(key, (calls.get(key) ?? 0) + 1);
      total++;
      if (opts.delayMs) await sleep(opts.delayMs, signal);
      signal?.throwIfAborted();
      if (opts.fail?.(req)) throw new Error(`fake failure for seed ${req.seed}`);
      const bytes = await fakePng(req, opts.size ?? req.width);
      completed++;
      return { bytes, format: "png", used: { seed: req.seed, cfgScale: req.cfgScale } };
    },
    async *reference(count, seed) {
      for (let i = 0; i < count; i++) {
        const req = { prompt: "real", negativePrompt: "", cfgScale: 1, seed: seed * 100003 + i, steps: 1, width: opts.size ?? 32, height: opts.size ?? 32, extra: {} };
        yield { name: `real-${i}.png`, bytes: await fakePng(req, opts.size ?? 32) };
      }
    },
  };
}

/** Noise around a colour set by the prompt and the scale (higher scale: less noise). */
async function fakePng(req: GenerationRequest, size: number): Promise<Uint8Array> {
  const rand = mulberry32(hash(`${req.prompt}|${req.negativePrompt}|${req.seed}`));
  const base = [hash(req.prompt) & 255, (hash(req.prompt) >> 8) & 255, 128];
  const spread = 120 / req.cfgScale;
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = clamp(base[i % 3] + (rand() - 0.5) * 2 * spread);
  const png = await sharp(data, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
  return new Uint8Array(png);
}

function clamp(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
