/** Loopback helpers: free ports and waiting for a server's health check. */
import { createServer } from "node:net";

/** A TCP port that was free on `host` a moment ago (the OS picks it). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Whether `port` can be listened on at `host` right now. */
export function portAvailable(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `url` until it answers 200. Fails after `timeoutMs`, or as soon as `gaveUp` settles (for example when the
 * server's process exits), with the last problem seen.
 */
export async function waitForHealthy(
  url: string,
  { timeoutMs = 120_000, gaveUp }: { timeoutMs?: number; gaveUp?: Promise<unknown> } = {},
): Promise<void> {
  let ended = false;
  void gaveUp?.finally(() => (ended = true));
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (!ended) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      await response.body?.cancel();
      if (response.status === 200) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} was not healthy after ${timeoutMs / 1000} s (${last})`);
    await sleep(250);
  }
  throw new Error(`the server exited before ${url} was healthy (${last})`);
}
