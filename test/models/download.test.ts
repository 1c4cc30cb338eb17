import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isDiffevalError, type ErrorCode } from "../../src/errors.js";
import { downloadVerified } from "../../src/models/download.js";
import { closedPortUrl, startServer, type LocalServer } from "../helpers/local-server.js";

const BODY = randomBytes(300_000); // several socket chunks
const SHA = createHash("sha256").update(BODY).digest("hex");

let dir: string;
let server: LocalServer | undefined;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "diffeval-dl-"));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function expectError(p: Promise<unknown>, code: ErrorCode): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isDiffevalError(e, code), `expected ${code}, got ${String(e)}`).toBe(true);
  return e as Error;
}

describe("downloadVerified", () => {
  it("follows absolute and relative redirects and caches the verified file, leaving no temp", async () => {
    server = await startServer((req, res) => {
      if (req.url === "/start") {
        res.writeHead(302, { location: server!.url("/a/hop") }).end();
      } else if (req.url === "/a/hop") {
        res.writeHead(307, { location: "files/w.pth" }).end(); // relative: -> /a/files/w.pth
      } else if (req.url === "/a/files/w.pth") {
        res.writeHead(200, { "content-length": BODY.length }).end(BODY);
      } else {
        res.writeHead(404).end();
      }
    });
    const dest = path.join(dir, "sub", "w.pth");
    const calls: Array<[number, number | undefined]> = [];
    const r = await downloadVerified({
      url: server.url("/start"),
      dest,
      sha256: SHA,
      onProgress: (received, total) => calls.push([received, total]),
    });
    expect(server.requests).toEqual(["/start", "/a/hop", "/a/files/w.pth"]);
    expect(r).toEqual({ path: dest, sha256: SHA, bytes: BODY.length });
    expect(readFileSync(dest).equals(BODY)).toBe(true);
    expect(readdirSync(path.dirname(dest))).toEqual(["w.pth"]);
    expect(calls[0]).toEqual([0, BODY.length]);
    expect(calls.at(-1)).toEqual([BODY.length, BODY.length]);
  });

  it("accepts a file identified only by its sha256 prefix", async () => {
    server = await startServer((_req, res) => res.end(BODY));
    const dest = path.join(dir, "w.pth");
    const r = await downloadVerified({ url: server.url("/w"), dest, sha256Prefix: SHA.slice(0, 8) });
    expect(r.sha256).toBe(SHA);
    expect(readFileSync(dest).equals(BODY)).toBe(true);
  });

  it("rejects a corrupted body with E_WEIGHTS_SHA256 and keeps nothing (an old file stays intact)", async () => {
    const bad = Buffer.from(BODY);
    bad[1234] ^= 0xff;
    server = await startServer((_req, res) => res.writeHead(200, { "content-length": bad.length }).end(bad));
    const dest = path.join(dir, "w.pth");
    writeFileSync(dest, "old");
    const e = await expectError(downloadVerified({ url: server.url("/w"), dest, sha256: SHA }), "E_WEIGHTS_SHA256");
    const badSha = createHash("sha256").update(bad).digest("hex");
    expect(e.message).toContain(SHA);
    expect(e.message).toContain(badSha);
    expect(e.message).toContain(server.url("/w"));
    expect(readFileSync(dest, "utf8")).toBe("old");
    expect(readdirSync(dir)).toEqual(["w.pth"]);
  });

  it("rejects a prefix mismatch", async () => {
    server = await startServer((_req, res) => res.end(BODY));
    const dest = path.join(dir, "w.pth");
    await expectError(downloadVerified({ url: server.url("/w"), dest, sha256Prefix: "00000000" }), "E_WEIGHTS_SHA256");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("fails with E_DOWNLOAD when the server dies mid-transfer, leaving nothing", async () => {
    server = await startServer((_req, res) => {
      res.writeHead(200, { "content-length": BODY.length });
      res.write(BODY.subarray(0, BODY.length / 2), () => setTimeout(() => res.socket?.destroy(), 20));
    });
    const dest = path.join(dir, "w.pth");
    const e = await expectError(downloadVerified({ url: server.url("/w"), dest, sha256: SHA }), "E_DOWNLOAD");
    expect(e.message).toContain(dest);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("fails with E_DOWNLOAD when a chunked response is cut off", async () => {
    server = await startServer((_req, res) => {
      res.writeHead(200); // no content-length: chunked
      res.write(BODY.subarray(0, 1000), () => setTimeout(() => res.socket?.destroy(), 20));
    });
    const dest = path.join(dir, "w.pth");
    await expectError(downloadVerified({ url: server.url("/w"), dest, sha256: SHA }), "E_DOWNLOAD");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("explains where to put a manual download when the connection is refused", async () => {
    const url = await closedPortUrl("/w.pth");
    const dest = path.join(dir, "cache", "w.pth");
    const e = await expectError(downloadVerified({ url, dest, sha256: SHA }), "E_DOWNLOAD");
    expect(e.message).toContain("ECONNREFUSED");
    expect(e.message).toContain(dest);
    expect(e.message).toContain(url);
    expect(e.message).toContain("--weights FILE");
    expect(e.message).toContain("DIFFEVAL_WEIGHTS");
    expect(readdirSync(path.join(dir, "cache"))).toEqual([]);
  });

  it("reports a non-2xx final status", async () => {
    server = await startServer((req, res) => {
      if (req.url === "/w") res.writeHead(301, { location: "/gone" }).end();
      else res.writeHead(404, "Not Found").end("nope");
    });
    const e = await expectError(
      downloadVerified({ url: server.url("/w"), dest: path.join(dir, "w.pth"), sha256: SHA }),
      "E_DOWNLOAD",
    );
    expect(e.message).toMatch(/HTTP 404 Not Found/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("gives up after maxRedirects", async () => {
    server = await startServer((_req, res) => res.writeHead(302, { location: "/loop" }).end());
    const e = await expectError(
      downloadVerified({ url: server.url("/loop"), dest: path.join(dir, "w.pth"), sha256: SHA, maxRedirects: 3 }),
      "E_DOWNLOAD",
    );
    expect(e.message).toContain("more than 3 redirects");
    expect(server.requests).toHaveLength(4);
  });

  it("aborts a stalled transfer after the idle timeout", async () => {
    server = await startServer((_req, res) => {
      res.writeHead(200, { "content-length": BODY.length });
      res.write(BODY.subarray(0, 100)); // then silence
    });
    const t0 = Date.now();
    const e = await expectError(
      downloadVerified({ url: server.url("/w"), dest: path.join(dir, "w.pth"), sha256: SHA, timeoutMs: 200 }),
      "E_DOWNLOAD",
    );
    expect(e.message).toContain("timed out");
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses to download without an expected hash", async () => {
    await expectError(downloadVerified({ url: "http://127.0.0.1:1/x", dest: path.join(dir, "x") }), "E_INTERNAL");
  });
});
