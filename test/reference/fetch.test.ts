import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchReference, referenceCachePath } from "../../src/reference/fetch.js";
import { parseManifest, type ReferenceEntry } from "../../src/reference/manifest.js";
import { closedPortUrl, startServer, type LocalServer } from "../helpers/local-server.js";

const BODY = randomBytes(50_000);
const SHA = createHash("sha256").update(BODY).digest("hex");
let server: LocalServer;
let dir: string;
const env = () => ({ DIFFEVAL_CACHE: dir });

function entry(url: string, sha256: string | null): ReferenceEntry {
  const raw = {
    name: "t",
    dataset: "d",
    split: "s",
    resolution: null,
    protocol: "clean",
    n: null,
    publisher: "p",
    url,
    sha256,
    ...(sha256 === null ? { unverified: true } : {}),
    format: "mu-sigma",
    keys: { mu: "mu", sigma: "sigma" },
    confirmed: "test",
  };
  return parseManifest({ entries: [raw] }, "m.json").entries[0];
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-fetch-"));
  server = await startServer((_req, res) => res.writeHead(200, { "content-length": BODY.length }).end(BODY));
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("fetchReference", () => {
  it("replaces a corrupt cached copy with a verified download, and refuses it when downloads are off", async () => {
    const e = entry(server.url("/s.npz"), SHA);
    const dest = referenceCachePath(e, env());
    mkdirSync(path.dirname(dest), { recursive: true });
    writeFileSync(dest, "corrupt");
    await expect(fetchReference(e, { env: env(), allowDownload: false })).rejects.toMatchObject({ code: "E_REFERENCE_SHA256" });
    const got = await fetchReference(e, { env: env() });
    expect(got).toMatchObject({ path: dest, sha256: SHA, verified: true, source: "download" });
    expect(readFileSync(dest).equals(BODY)).toBe(true);
    expect(await fetchReference(e, { env: env(), allowDownload: false })).toMatchObject({ source: "cache", verified: true });
  });

  it("reports an entry without a hash as unverified, from the cache too", async () => {
    const e = { ...entry(server.url("/u.npz"), null), name: "u" };
    expect(await fetchReference(e, { env: env() })).toMatchObject({ sha256: SHA, verified: false, source: "download" });
    expect(await fetchReference(e, { env: env() })).toMatchObject({ sha256: SHA, verified: false, source: "cache" });
  });

  it("says where a hand-downloaded copy goes when offline, and never suggests --weights", async () => {
    const e = { ...entry(await closedPortUrl("/x.npz"), SHA), name: "offline" };
    const err = (await fetchReference(e, { env: env() }).then(
      () => undefined,
      (x: unknown) => x,
    )) as Error & { code: string };
    expect(err.code).toBe("E_DOWNLOAD");
    expect(err.message).toContain(`save it as ${referenceCachePath(e, env())}`);
    expect(err.message).not.toContain("--weights");
    await expect(fetchReference({ ...e, name: "missing" }, { env: env(), allowDownload: false })).rejects.toMatchObject({ code: "E_REFERENCE_MISSING" });
  });
});
