/** A throwaway HTTP server on 127.0.0.1 (tests never touch the network). */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface LocalServer {
  url(pathname: string): string;
  /** Paths requested so far, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function startServer(handler: http.RequestListener): Promise<LocalServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? "");
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (pathname) => `http://127.0.0.1:${port}${pathname}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections(); // stalled responses must not keep the test waiting
        server.close(() => resolve());
      }),
  };
}

/** A port that was just free and is now closed: connecting to it is refused. */
export async function closedPortUrl(pathname: string): Promise<string> {
  const s = await startServer(() => {});
  const url = s.url(pathname);
  await s.close();
  return url;
}
