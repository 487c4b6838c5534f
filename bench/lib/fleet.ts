/**
 * Many scripted sessions at once, for the side-by-side and load suites: a gateway started for load (account limits
 * raised, no STUN), runtimes that serve hundreds of sessions each (assignments in any order, heartbeats), sessions
 * brought to ACTIVE concurrently with their timings, and what the gateway's processes cost (CPU, memory, files).
 * Scripted peers speak the real protocol over real WebSockets (tools/peers.ts); no media.
 */
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import { ManagedChild } from "../../scripts/lib/supervisor.ts";
import { wranglerEnv } from "../../scripts/lib/wrangler.ts";
import { startGateway, type TestGateway } from "../../tools/gateway.ts";
import { BenchRuntime, createSession, FAKE_SDP, openSignal, withTimeout, type Frame, type GatewayAccess, type NodePeer } from "../../tools/peers.ts";
import { commandLine, cpuMs, listeningPorts, openFiles, processesNamed, rssKiB, type OpenFiles } from "../../tools/procfs.ts";

/**
 * Vars for a gateway under load. The account limits (5 concurrent sessions, 50 creations a minute per model) would
 * refuse a load test at once, so they are raised; no STUN servers (nothing leaves the machine).
 */
export const LOAD_VARS: Record<string, string> = {
  LIMIT_CONCURRENT_SESSIONS: "100000",
  LIMIT_SESSION_CREATIONS_PER_MINUTE: "100000",
  LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE: "100000",
  LIMIT_TOKEN_MINTS_PER_MINUTE: "100000",
  STUN_URLS: "",
};

export type Storage = "disk" | "tmpfs";

/** X_LOCAL_OBSERVABILITY as the bench gateways get it (wranglerEnv: "false" unless the caller's env says otherwise). */
export function localTracing(): string {
  return wranglerEnv().X_LOCAL_OBSERVABILITY ?? "false";
}

/** What the gateway's Worker is built from (wrangler.toml's `main`, its imports, D1 migrations, static assets). */
const GATEWAY_SOURCES = [
  "worker.ts",
  "protocol",
  "lib",
  "src",
  "durable-objects",
  "migrations",
  "public",
  "wrangler.toml",
  "package.json",
  "tsconfig.json",
];

let snapshotDir: string | undefined;

/**
 * A copy of the gateway's sources taken once per bench run, to run `wrangler dev` from. wrangler dev watches every
 * file of the bundle and restarts the Worker when one changes ("Your worker restarted mid-request"), dropping every
 * socket and object: on a working tree others are editing, a long load run would measure restarts. The copy holds
 * the code as it was when the run started, for the whole run. node_modules is linked, not copied.
 */
export function gatewaySnapshot(): string {
  if (snapshotDir) return snapshotDir;
  const dir = mkdtempSync(path.join(tmpdir(), "reactor-bench-gateway-"));
  for (const entry of GATEWAY_SOURCES) {
    if (existsSync(path.join(PROJECT_ROOT, entry))) cpSync(path.join(PROJECT_ROOT, entry), path.join(dir, entry), { recursive: true });
  }
  symlinkSync(path.join(PROJECT_ROOT, "node_modules"), path.join(dir, "node_modules"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  snapshotDir = dir;
  return dir;
}

/**
 * The gateway under `wrangler dev` (local tracing off: see wranglerEnv), built from the run's snapshot of the
 * sources, its objects' SQLite on disk or tmpfs.
 */
export async function startLoadGateway(storage: Storage, vars: Record<string, string> = {}): Promise<TestGateway> {
  return pastDevProxy(
    await startGateway({
      configPath: path.join(gatewaySnapshot(), "wrangler.toml"),
      workRoot: storage === "tmpfs" ? "/dev/shm" : undefined,
      vars: { ...LOAD_VARS, ...vars },
    }),
  );
}

/**
 * The server as a deployed Worker's clients reach it: straight at the workerd that runs the Worker and its objects,
 * past wrangler's dev proxy — a second workerd in front of it that exists only under `wrangler dev` (it holds
 * connections across reloads), which every request and frame would otherwise cross on the way in and out. `url`
 * becomes the runtime's own entry socket (the one of its listening sockets whose /health answers 200); `port` stays
 * the public one, which is how `gatewayProcesses` tells the two processes apart.
 */
export async function pastDevProxy(server: TestGateway): Promise<TestGateway> {
  const { runtime } = gatewayProcesses(server);
  for (const pid of runtime) {
    for (const port of listeningPorts(pid)) {
      const url = `http://127.0.0.1:${port}`;
      const healthy = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })
        .then((response) => response.status === 200)
        .catch(() => false);
      if (healthy) return { ...server, url };
    }
  }
  await server.stop();
  throw new Error(`no entry socket of the Worker's workerd answers /health (processes ${runtime.join(", ") || "none"})`);
}

// ── Runtimes (each a tools/peers.ts BenchRuntime, which the tests' single runtime is too) ──────────────────────────

export interface Assigned {
  runtime: BenchRuntime;
  /** performance.now() when the `assign` frame arrived. */
  at: number;
}

/** Several runtimes of one model; finds which one a session was assigned to, whatever the order of assignments. */
export class RuntimePool {
  readonly runtimes: BenchRuntime[] = [];
  readonly #assigned = new Map<string, Assigned>();
  readonly #waiting = new Map<string, (assigned: Assigned) => void>();

  /** Runtimes for `capacity` sessions of `model`, at most `perRuntime` slots each (the protocol allows 1,024). */
  static async start(gateway: GatewayAccess, model: string, capacity: number, perRuntime = 1000): Promise<RuntimePool> {
    const pool = new RuntimePool();
    const count = Math.max(1, Math.ceil(capacity / perRuntime));
    for (let i = 0; i < count; i++) {
      const runtime = new BenchRuntime(gateway, model, `${model}-rt${i}`, Math.ceil(capacity / count));
      await runtime.connect((sessionId, by) => pool.#onAssign(sessionId, by));
      pool.runtimes.push(runtime);
    }
    return pool;
  }

  #onAssign(sessionId: string, runtime: BenchRuntime): void {
    const assigned = { runtime, at: performance.now() };
    const waiter = this.#waiting.get(sessionId);
    if (waiter) {
      this.#waiting.delete(sessionId);
      waiter(assigned);
    } else this.#assigned.set(sessionId, assigned);
  }

  /** The runtime `sessionId` is assigned to, and when its `assign` arrived (possibly before the question). */
  assignment(sessionId: string, timeoutMs: number): Promise<Assigned> {
    const known = this.#assigned.get(sessionId);
    if (known) {
      this.#assigned.delete(sessionId);
      return Promise.resolve(known);
    }
    return withTimeout(new Promise<Assigned>((resolve) => this.#waiting.set(sessionId, resolve)), timeoutMs, `${sessionId}: no assignment`).finally(
      () => this.#waiting.delete(sessionId),
    );
  }

  close(): void {
    for (const runtime of this.runtimes) runtime.close();
  }
}

// ── Sessions ────────────────────────────────────────────────────────────────────────────────────────────────────

export interface LiveSession {
  id: string;
  client: NodePeer;
  runtimePeer: NodePeer;
  runtime: BenchRuntime;
  /** The offer generation in use (1 after bring-up). */
  generation: number;
  /** ms from the start of POST /sessions: its answer, the runtime's `assign`, and ACTIVE on the client's socket. */
  timings: { created: number; assigned: number; ready: number };
}

/**
 * One session from nothing to ACTIVE, as a native client and its runtime do it: POST /sessions, the pool assigns a
 * runtime, the runtime opens the session socket (hello) while the client opens its signaling socket and sends its
 * offer, the runtime answers and reports the peer connection up, and the client sees `status ACTIVE`.
 */
export function bringUp(gatewayUrl: string, jwt: string, pool: RuntimePool, timeoutMs = 60_000): Promise<LiveSession> {
  // Bounded as a whole too: a request or a connect that hangs must not hold a load run forever.
  return withTimeout(bringUpSteps(gatewayUrl, jwt, pool, timeoutMs), timeoutMs + 10_000, "bring-up");
}

async function bringUpSteps(gatewayUrl: string, jwt: string, pool: RuntimePool, timeoutMs: number): Promise<LiveSession> {
  const started = performance.now();
  const since = () => performance.now() - started;
  const id = await createSession(gatewayUrl, jwt, pool.runtimes[0]!.model);
  const created = since();
  const { runtime, at } = await pool.assignment(id, timeoutMs);
  const assigned = at - started; // the pool assigns while the session is created: often before POST answers
  const [runtimePeer, client] = await Promise.all([runtime.openSession(id), openSignal(gatewayUrl, jwt, id)]);
  client.send({ type: "offer", generation: 1, sdp: FAKE_SDP });
  await runtimePeer.next("offer", timeoutMs);
  runtimePeer.send({ type: "answer", generation: 1, sdp: FAKE_SDP });
  runtimePeer.send({ type: "peer_state", generation: 1, state: "connected" });
  await client.next((frame) => frame.type === "status" && frame.state === "ACTIVE", timeoutMs);
  const ready = since();
  client.frames.length = 0; // welcome, status, answer…: not needed any more
  runtimePeer.frames.length = 0;
  return { id, client, runtimePeer, runtime, generation: 1, timings: { created, assigned, ready } };
}

export function closeSession(session: LiveSession): void {
  session.client.ws.terminate();
  session.runtimePeer.ws.terminate();
}

// ── Bounded concurrency, progress ───────────────────────────────────────────────────────────────────────────────

/**
 * Runs `task(0 … count-1)` with at most `limit` at a time; stops starting new ones once `stop()` says so (a deadline).
 * Failures are counted and the first few kept, not thrown: a load run reports how many failed.
 */
export async function runLimited(count: number, limit: number, task: (index: number) => Promise<void>, stop: () => boolean = () => false) {
  let next = 0;
  let failed = 0;
  const errors: string[] = [];
  const worker = async () => {
    while (next < count && !stop()) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failed++;
        if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return { started: next, failed, errors };
}

/** Prints `line()` every `everyMs` until stopped. */
export function every(everyMs: number, line: () => string, progress: (line: string) => void): () => void {
  const timer = setInterval(() => progress(line()), everyMs);
  return () => clearInterval(timer);
}

export interface NodeServer {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * A Node server script that prints its port, in its own process group, tethered to this process (it cannot outlive
 * the run). `pid` leads the group: its CPU is the group's, read from /proc.
 */
export async function startNodeServer(script: string): Promise<NodeServer> {
  let port: (line: string) => void;
  const firstLine = new Promise<string>((resolve) => (port = resolve));
  const child = new ManagedChild({ name: script, command: process.execPath, args: [script], cwd: PROJECT_ROOT }, (_name, line, stream) => {
    if (stream === "stdout") port(line);
    else console.error(`[${script}] ${line}`);
  });
  try {
    const line = await withTimeout(firstLine, 30_000, `${script}: no port`);
    return { port: Number(line), pid: child.pid, stop: () => child.stop() };
  } catch (error) {
    await child.stop();
    throw error;
  }
}

/** Starts servers side by side; if one fails, stops those that did start, then throws. */
export async function startAll<T extends { stop(): Promise<void> }[]>(...starts: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(starts);
  const failure = results.find((result) => result.status === "rejected");
  if (failure) {
    await Promise.allSettled(
      results.map((result) => (result.status === "fulfilled" ? (result.value as { stop(): Promise<void> }).stop() : undefined)),
    );
    throw (failure as PromiseRejectedResult).reason;
  }
  return results.map((result) => (result as PromiseFulfilledResult<unknown>).value) as T;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ── The gateway's processes ─────────────────────────────────────────────────────────────────────────────────────

export interface GatewayProcesses {
  /** wrangler's proxy in front of the Worker (it owns the public port): every request and frame passes through it. */
  proxy: number[];
  /** The workerd that runs the Worker and its Durable Objects. */
  runtime: number[];
}

/**
 * The gateway's workerd processes. wrangler dev runs two: a proxy on the public port, and the Worker's own runtime.
 * Told apart by the listening address on their command line.
 */
export function gatewayProcesses(gateway: TestGateway): GatewayProcesses {
  const found: GatewayProcesses = { proxy: [], runtime: [] };
  for (const pid of processesNamed(gateway.pid, "workerd")) {
    const line = commandLine(pid);
    if (line === "") continue; // gone
    (new RegExp(`entry=[^ ]*:${gateway.port}( |$)`).test(line) ? found.proxy : found.runtime).push(pid);
  }
  return found;
}

export interface ServerSnapshot {
  cpuMs: number;
  rssKiB: { proxy: number; runtime: number; total: number };
  files: { proxy: OpenFiles; runtime: OpenFiles };
}

function sumFiles(pids: number[]): OpenFiles {
  const sum: OpenFiles = { total: 0, sockets: 0, sqlite: 0, objects: {} };
  for (const files of pids.map(openFiles)) {
    sum.total += files.total;
    sum.sockets += files.sockets;
    sum.sqlite += files.sqlite;
    for (const [name, count] of Object.entries(files.objects)) sum.objects[name] = (sum.objects[name] ?? 0) + count;
  }
  return sum;
}

export function snapshot(processes: GatewayProcesses): ServerSnapshot {
  const all = [...processes.proxy, ...processes.runtime];
  const proxy = processes.proxy.reduce((sum, pid) => sum + rssKiB(pid), 0);
  const runtime = processes.runtime.reduce((sum, pid) => sum + rssKiB(pid), 0);
  return {
    cpuMs: all.reduce((sum, pid) => sum + cpuMs(pid), 0),
    rssKiB: { proxy, runtime, total: proxy + runtime },
    files: { proxy: sumFiles(processes.proxy), runtime: sumFiles(processes.runtime) },
  };
}

export type { Frame };
