/**
 * One `wrangler dev` server for tests and benchmarks: on a free loopback port unless told otherwise, in its own
 * process group, ready once its health path answers 200.
 */
import { freePort, waitForHealthy } from "./http.ts";
import { PROJECT_ROOT } from "./paths.ts";
import { ManagedChild } from "./supervisor.ts";
import { wranglerCommand, wranglerDevArgs, wranglerEnv, type DevServerOptions } from "./wrangler.ts";

export interface StartDevServerOptions extends Omit<DevServerOptions, "port"> {
  port?: number;
  /** Polled until it answers 200 (default /health). */
  healthPath?: string;
  readyTimeoutMs?: number;
  /** Sees every line wrangler and the Worker print. */
  onLine?: (line: string) => void;
}

export interface DevServer {
  url: string;
  port: number;
  /** Leader of the server's process group (wrangler). */
  pid: number;
  /** Stops every process of the server (SIGTERM, then SIGKILL). Idempotent. */
  stop(): Promise<void>;
}

export async function startDevServer(options: StartDevServerOptions): Promise<DevServer> {
  const port = options.port ?? (await freePort());
  const inspectorPort = options.inspectorPort ?? (await freePort());
  const { command, args } = wranglerCommand(wranglerDevArgs({ ...options, port, inspectorPort }));
  const child = new ManagedChild({ name: "wrangler", command, args, cwd: PROJECT_ROOT, env: wranglerEnv() }, (_name, line) => options.onLine?.(line));
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= child.stop());
  const url = `http://${options.ip ?? "127.0.0.1"}:${port}`;
  try {
    await waitForHealthy(url + (options.healthPath ?? "/health"), {
      timeoutMs: options.readyTimeoutMs ?? 120_000,
      gaveUp: child.exited,
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, port, pid: child.pid, stop };
}
