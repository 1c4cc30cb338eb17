import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { createA1111Generator } from "../../src/generators/a1111.js";
import type { GenerationRequest } from "../../src/generators/generator.js";
import { seedOfPixel, seedPng, startA1111Server, type A1111TestServer } from "../helpers/a1111-server.js";
import { closedPortUrl, startServer, type LocalServer } from "../helpers/local-server.js";

function request(over: Partial<GenerationRequest> = {}): GenerationRequest {
  return { prompt: "a red circle <lora:detail:0.6>", negativePrompt: "blurry", cfgScale: 5.5, seed: 1234, steps: 12, width: 16, height: 8, extra: {}, ...over };
}

async function firstPixel(bytes: Uint8Array): Promise<{ r: number; g: number; b: number }> {
  const { data } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  return { r: data[0], g: data[1], b: data[2] };
}

const servers: Array<A1111TestServer | LocalServer> = [];
async function server(options?: Parameters<typeof startA1111Server>[1]): Promise<A1111TestServer> {
  const s = await startA1111Server(seedPng, options);
  servers.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe("a1111 generator", () => {
  it("sends the txt2img fields for one image and decodes the base64 PNG", async () => {
    const s = await server();
    const gen = createA1111Generator({ baseUrl: s.baseUrl, sampler: "Euler a" });
    const image = await gen.generate(request());
    expect(s.payloads[0]).toMatchObject({
      prompt: "a red circle <lora:detail:0.6>",
      negative_prompt: "blurry",
      cfg_scale: 5.5,
      seed: 1234,
      steps: 12,
      width: 16,
      height: 8,
      sampler_name: "Euler a",
      batch_size: 1,
      n_iter: 1,
    });
    expect(image.format).toBe("png");
    const meta = await sharp(image.bytes).metadata();
    expect([meta.width, meta.height]).toEqual([16, 8]);
    const px = await firstPixel(image.bytes);
    expect(seedOfPixel(px.r, px.g)).toBe(1234);
    expect(px.b).toBe(55); // round(10 * cfg 5.5)
    expect(image.used).toMatchObject({ seed: 1234, cfgScale: 5.5, sampler: "Euler a", model: "test-model" });
    expect(s.imageCount).toBe(1);
  });

  it("merges extra axes that are A1111 fields, and only those", async () => {
    const s = await server();
    const gen = createA1111Generator({ baseUrl: s.baseUrl, sampler: "Euler" });
    const image = await gen.generate(
      request({ extra: { sampler: "DPM++ 2M", scheduler: "Karras", lora_weight: 0.6, "override_settings.CLIP_stop_at_last_layers": 2 } }),
    );
    const p = s.payloads[0];
    expect(p.sampler_name).toBe("DPM++ 2M");
    expect(p.scheduler).toBe("Karras");
    expect(p.override_settings).toEqual({ CLIP_stop_at_last_layers: 2 });
    expect("lora_weight" in p).toBe(false); // the sweep writes LoRA weights into the prompt
    expect(image.used.extra).toEqual({ sampler: "DPM++ 2M", scheduler: "Karras", "override_settings.CLIP_stop_at_last_layers": 2 });
  });

  it("parses info a second time and takes the seed from all_seeds (seed -1 = server's choice)", async () => {
    const s = await server({ randomSeed: 987654 });
    const gen = createA1111Generator({ baseUrl: s.baseUrl });
    const image = await gen.generate(request({ seed: -1 }));
    expect(image.used.seed).toBe(987654);
    expect(s.generated[0].seed).toBe(987654);
  });

  it("trusts all_seeds over the requested seed", async () => {
    const png = await seedPng(request());
    const raw = await startServer((_req, res) => {
      const info = JSON.stringify({ seed: 1234, all_seeds: [777], index_of_first_image: 1 });
      const body = JSON.stringify({ images: ["bm90IGFuIGltYWdl", Buffer.from(png).toString("base64")], parameters: {}, info });
      res.writeHead(200, { "content-type": "application/json" }).end(body);
    });
    servers.push(raw);
    const gen = createA1111Generator({ baseUrl: raw.url("") });
    const image = await gen.generate(request());
    expect(image.used.seed).toBe(777);
    expect(Buffer.from(image.bytes).equals(Buffer.from(png))).toBe(true); // images[index_of_first_image]
  });

  it("sends HTTP Basic auth and reports a 401 without retrying", async () => {
    const s = await server({ auth: { user: "ann", password: "s3cret:x" } });
    const ok = createA1111Generator({ baseUrl: s.baseUrl, auth: { user: "ann", password: "s3cret:x" }, retries: 3, backoffMs: 1 });
    await ok.generate(request());
    expect(s.authorizations[0]).toBe(`Basic ${Buffer.from("ann:s3cret:x").toString("base64")}`);
    const bad = createA1111Generator({ baseUrl: s.baseUrl, auth: { user: "ann", password: "wrong" }, retries: 3, backoffMs: 1 });
    const err = await bad.generate(request()).catch((e) => e);
    expect(err.code).toBe("E_GENERATOR");
    expect(err.message).toMatch(/HTTP 401/);
    expect(err.message).toMatch(/Incorrect username or password/);
    expect(s.payloads).toHaveLength(2);
  });

  it("retries a 500 with backoff and then succeeds", async () => {
    const s = await server();
    s.failNext(2);
    const gen = createA1111Generator({ baseUrl: s.baseUrl, retries: 3, backoffMs: 20 });
    const started = Date.now();
    const image = await gen.generate(request());
    expect(image.used.seed).toBe(1234);
    expect(s.payloads).toHaveLength(3);
    expect(s.imageCount).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(20 + 40); // 20 ms, then 40 ms
  });

  it("gives up after the retries with the last 5xx body", async () => {
    const s = await server();
    s.failNext(10, 503);
    const gen = createA1111Generator({ baseUrl: s.baseUrl, retries: 2, backoffMs: 1 });
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.code).toBe("E_GENERATOR");
    expect(err.message).toMatch(/after 3 attempts: HTTP 503/);
    expect(err.message).toMatch(/injected failure 503/);
    expect(s.payloads).toHaveLength(3);
  });

  it("does not retry a 4xx and quotes the body", async () => {
    const s = await server();
    const gen = createA1111Generator({ baseUrl: s.baseUrl, retries: 3, backoffMs: 1 });
    s.failNext(1, 422);
    const rejected = await gen.generate(request()).catch((e) => e);
    expect(rejected.code).toBe("E_GENERATOR");
    expect(rejected.message).toMatch(/HTTP 422/);
    expect(rejected.message).toMatch(/injected failure 422/);
    expect(s.payloads).toHaveLength(1);
  });

  it("retries connection errors and names the cause", async () => {
    const gen = createA1111Generator({ baseUrl: await closedPortUrl(""), retries: 1, backoffMs: 1 });
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.code).toBe("E_GENERATOR");
    expect(err.message).toMatch(/after 2 attempts: network error: ECONNREFUSED/);
  });

  it("times out a request that takes too long, without retrying it", async () => {
    const s = await server({ delayMs: 1500 });
    const gen = createA1111Generator({ baseUrl: s.baseUrl, timeoutMs: 200, retries: 3, backoffMs: 1 });
    const err = await gen.generate(request()).catch((e) => e);
    expect(err.message).toMatch(/no answer within 200 ms/);
    expect(s.payloads).toHaveLength(1);
  });

  it("keeps at most `concurrency` requests in flight", async () => {
    const s = await server({ delayMs: 100 });
    const gen = createA1111Generator({ baseUrl: s.baseUrl, concurrency: 2 });
    expect(gen.concurrency).toBe(2);
    const seeds = [1, 2, 3, 4, 5];
    const images = await Promise.all(seeds.map((seed) => gen.generate(request({ seed }))));
    expect(images.map((i) => i.used.seed)).toEqual(seeds);
    expect(s.maxInFlight).toBe(2);
  });

  it("rejects bad settings naming the field", () => {
    expect(() => createA1111Generator({ baseUrl: "127.0.0.1:7860" })).toThrow(/`baseUrl` must be an http\(s\) URL/);
    expect(() => createA1111Generator({ baseUrl: "http://x", concurrency: 0 })).toThrow(/`concurrency` must be an integer >= 1/);
    expect(() => createA1111Generator({ baseUrl: "http://x", auth: { user: "a" } as never })).toThrow(/`auth` must be/);
  });
});
