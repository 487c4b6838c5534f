/**
 * The floor the load suite (bench/suites/load.ts) measures the gateway against, side by side in the same run: the
 * bare relay Worker (bench/workers/bare-relay — one hibernatable Durable Object per pair that forwards every frame
 * client ↔ peer untouched; `?writes=1` also stores one SQLite row per frame) under its own `wrangler dev`, started
 * the way the gateway is (workerd, local tracing off: see wranglerEnv; its objects' SQLite on the same storage), and
 * driven with the same client counts and windows as the gateway's runs:
 *   - burst: N pairs at once; each opens its two sockets, the client sends an offer-sized frame, the peer answers it;
 *     ready = the answer at the client;
 *   - commands: on N pairs, numbered commands with at most `window` not yet acknowledged, through the relay storing
 *     one row per frame (both ways), the peer acknowledging every command at once;
 *   - idle: N pairs (after an offer and an answer) left alone until workerd evicts their objects (hibernation: the
 *     sockets stay open, the object closes its SQLite database); the RSS of the Worker's workerd and wrangler's proxy.
 * Nothing here parses, authenticates or checks anything: it is what any relay built on a Durable Object per session
 * pays on this machine, under the same local runtime.
 */
import path from "node:path";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import {
  every,
  gatewayProcesses,
  pastDevProxy,
  runLimited,
  sleep,
  snapshot,
  type GatewayProcesses,
  type ServerSnapshot,
  type Storage,
} from "./fleet.ts";
import { startGateway, type TestGateway } from "../../tools/gateway.ts";
import { NodePeer, withTimeout } from "../../tools/peers.ts";
import { cpuMs, totalCpuMs } from "../../tools/procfs.ts";
import { ANSWER_SDP, OFFER_SDP } from "./signaling-samples.ts";
import { distribution, type Distribution } from "../harness/stats.ts";

export interface Floor {
  server: TestGateway;
  /** Its workerd processes, told apart as the gateway's are: wrangler's proxy, and the Worker's own runtime. */
  processes: GatewayProcesses;
  stop(): Promise<void>;
}

/** The bare relay under `wrangler dev`, as bench/suites/relay.ts runs it, its objects' SQLite on `storage`. */
export async function startFloor(storage: Storage): Promise<Floor> {
  const server = await pastDevProxy(
    await startGateway({
      configPath: path.join(PROJECT_ROOT, "bench", "workers", "bare-relay", "wrangler.toml"),
      migrate: false,
      workRoot: storage === "tmpfs" ? "/dev/shm" : undefined,
    }),
  );
  return { server, processes: gatewayProcesses(server), stop: () => server.stop() };
}

export interface BarePair {
  client: NodePeer;
  peer: NodePeer;
}

/** Both ends of pair `name`, open (the relay drops what a client sends before its peer is there). */
async function openPair(floor: Floor, name: string, writes: boolean): Promise<BarePair> {
  const base = `${floor.server.url.replace(/^http/, "ws")}/pair/${name}`;
  const query = writes ? "?writes=1" : "";
  const [client, peer] = await Promise.allSettled([NodePeer.open(`${base}/client${query}`), NodePeer.open(`${base}/peer${query}`)]);
  if (client.status === "fulfilled" && peer.status === "fulfilled") return { client: client.value, peer: peer.value };
  for (const end of [client, peer]) if (end.status === "fulfilled") end.value.ws.terminate();
  throw (client.status === "rejected" ? client.reason : (peer as PromiseRejectedResult).reason) as Error;
}

/** The client's offer (≈ 3.2 KB) to the peer, the peer's answer back. */
async function offerAnswer(pair: BarePair, timeoutMs: number): Promise<void> {
  pair.client.send({ type: "offer", generation: 1, sdp: OFFER_SDP });
  await pair.peer.next("offer", timeoutMs);
  pair.peer.send({ type: "answer", generation: 1, sdp: ANSWER_SDP });
  await pair.client.next("answer", timeoutMs);
  pair.client.frames.length = 0;
  pair.peer.frames.length = 0;
}

export function closePairs(pairs: BarePair[]): void {
  for (const pair of pairs) {
    pair.client.ws.terminate();
    pair.peer.ws.terminate();
  }
  pairs.length = 0;
}

// ── Burst ───────────────────────────────────────────────────────────────────────────────────────────────────────

export interface FloorBurst {
  pairs: number;
  ready: number;
  failed: number;
  errors: string[];
  /** From the start of the pair's two socket connects to the answer at its client. */
  connectToReady: Distribution;
  /** All pairs ready, from the first connect. */
  seconds: number;
  /** CPU of the floor's workerd processes (Worker and proxy) per pair. */
  cpuMsPerPair: number;
  /** CPU time ÷ wall time over the burst: the floor's Worker workerd, its proxy, this process (the clients). */
  cpuShare: { runtime: number; proxy: number; client: number };
  samples: number[];
}

/** `count` pairs at once, each: both sockets, offer, answer. The pairs are closed afterwards. */
export async function floorBurst(floor: Floor, count: number, timeoutMs: number, progress: (line: string) => void): Promise<FloorBurst> {
  const { processes } = floor;
  const pairs: BarePair[] = [];
  const samples: number[] = [];
  const errors: string[] = [];
  let failed = 0;
  // One pair first, so that the burst does not pay for the Worker's first request (as the gateway's does not).
  const warm = await withTimeout(openPair(floor, "burst-warm-up", false), timeoutMs, "bare pair: sockets");
  await offerAnswer(warm, timeoutMs).finally(() => closePairs([warm]));
  const before = { runtime: totalCpuMs(processes.runtime), proxy: totalCpuMs(processes.proxy), client: cpuMs(process.pid) };
  const started = performance.now();
  const stop = every(2000, () => `  … floor: ${samples.length}/${count} pairs ready`, progress);
  try {
    await Promise.all(
      Array.from({ length: count }, async (_, index) => {
        const t0 = performance.now();
        try {
          const pair = await withTimeout(openPair(floor, `burst-${index}`, false), timeoutMs, "bare pair: sockets");
          pairs.push(pair);
          await offerAnswer(pair, timeoutMs);
          samples.push(performance.now() - t0);
        } catch (error) {
          failed++;
          if (errors.length < 5) errors.push((error as Error).message);
        }
      }),
    );
  } finally {
    stop();
  }
  const seconds = (performance.now() - started) / 1000;
  const after = { runtime: totalCpuMs(processes.runtime), proxy: totalCpuMs(processes.proxy), client: cpuMs(process.pid) };
  closePairs(pairs);
  const busy = (key: keyof typeof before) => (after[key] - before[key]) / (seconds * 1000);
  return {
    pairs: count,
    ready: samples.length,
    failed,
    errors,
    connectToReady: distribution(samples),
    seconds,
    cpuMsPerPair: (after.runtime + after.proxy - before.runtime - before.proxy) / Math.max(1, samples.length),
    cpuShare: { runtime: busy("runtime"), proxy: busy("proxy"), client: busy("client") },
    samples,
  };
}

// ── Commands ────────────────────────────────────────────────────────────────────────────────────────────────────

export interface FloorCommands {
  pairs: number;
  commands: number;
  /** Pairs whose last command was acknowledged before the deadline. */
  completed: number;
  /** Pairs that did not come up (their commands are not counted). */
  setupFailed: number;
  errors: string[];
  /** Commands that reached the peer out of order (the relay must not reorder). */
  outOfOrder: number;
  seconds: number;
  /** Commands acknowledged in pairs that finished ÷ seconds (as the gateway's runs count them). */
  perSecond: number;
  /** CPU of the floor's workerd processes per command, and the proxy's share of it. */
  cpuUsPerCommand: number;
  proxyCpuUsPerCommand: number;
}

export interface FloorCommandPlan {
  perPair: number;
  /** At most this many commands sent and not yet acknowledged by the peer. */
  window: number;
  /** Pairs not finished this long after the first command are left unfinished (not counted). */
  maxMs: number;
}

/**
 * On `count` fresh pairs storing one row per frame, each client sends numbered commands (the gateway's command frame)
 * with at most `window` not yet acknowledged; the peer acknowledges each one at once, and the acknowledgement, a frame
 * too, is stored on its way back. A command counts when its client has seen its acknowledgement.
 */
export async function floorCommands(floor: Floor, count: number, plan: FloorCommandPlan, onProgress: () => void): Promise<FloorCommands> {
  const pairs: BarePair[] = [];
  const setup = await runLimited(count, 128, async (index) => {
    pairs.push(await withTimeout(openPair(floor, `commands-${index}`, true), 30_000, "bare pair: sockets"));
  });
  const opened = pairs.length;
  let completed = 0;
  let outOfOrder = 0;
  const cpu = () => ({ runtime: totalCpuMs(floor.processes.runtime), proxy: totalCpuMs(floor.processes.proxy) });
  const before = cpu();
  const started = performance.now();
  const deadlineAt = Date.now() + plan.maxMs;
  try {
    await Promise.all(
      pairs.map(
        (pair, index) =>
          new Promise<void>((resolve) => {
            let next = 1;
            let acknowledged = 0;
            let expected = 1;
            const finish = () => {
              clearTimeout(deadline);
              pair.client.onFrame = () => true;
              pair.peer.onFrame = () => true;
              resolve();
            };
            const deadline = setTimeout(finish, Math.max(0, deadlineAt - Date.now()));
            const send = () => {
              while (next <= plan.perPair && next - acknowledged <= plan.window) {
                const seq = next++;
                pair.client.send({ type: "command", seq, command: { type: "echo", data: { seq, session: index } } });
              }
            };
            pair.peer.onFrame = (frame) => {
              if (frame.type !== "command") return true;
              const seq = frame.seq as number;
              if (seq !== expected) outOfOrder++;
              expected = Math.max(expected, seq + 1);
              pair.peer.send({ type: "command_ack", seq });
              return true;
            };
            pair.client.onFrame = (frame) => {
              if (frame.type !== "command_ack") return true;
              acknowledged = Math.max(acknowledged, frame.seq as number);
              onProgress();
              if (acknowledged >= plan.perPair) {
                completed++;
                finish();
              } else send();
              return true;
            };
            send();
          }),
      ),
    );
  } finally {
    closePairs(pairs);
  }
  const seconds = (performance.now() - started) / 1000;
  const after = cpu();
  const commands = opened * plan.perPair;
  return {
    pairs: count,
    commands,
    completed,
    setupFailed: setup.failed + (count - setup.started),
    errors: setup.errors,
    outOfOrder,
    seconds,
    perSecond: (completed * plan.perPair) / seconds,
    cpuUsPerCommand: ((after.runtime + after.proxy - before.runtime - before.proxy) * 1000) / Math.max(1, commands),
    proxyCpuUsPerCommand: ((after.proxy - before.proxy) * 1000) / Math.max(1, commands),
  };
}

// ── Idle ────────────────────────────────────────────────────────────────────────────────────────────────────────

/** An idle run, the gateway's or the floor's: brought up, then left until workerd evicted the objects. */
export interface IdleRun {
  wanted: number;
  failed: number;
  errors: string[];
  setupSeconds: number;
  /** The server's processes before, with everything up, and once the objects were evicted. */
  baseline: ServerSnapshot;
  active: ServerSnapshot;
  hibernated: ServerSnapshot;
  /** Seconds from the last one up to (nearly) every object evicted (their SQLite files closed). */
  settleSeconds: number;
  /** Objects still in memory (their SQLite database open) at the end of the wait. */
  residentHibernated: number;
  /** Why fewer than `wanted` came up (open files, memory, time), if they did. */
  scaledBecause?: string;
}

export interface FloorIdle extends IdleRun {
  pairs: number;
}

/** Bare relay objects in memory: each holds its SQLite database open; an evicted (hibernated) one has closed it. */
export const floorResident = (now: ServerSnapshot) => now.files.runtime.objects.BareRelay ?? 0;

export interface FloorIdleRun {
  /** Waits (bounded) until the pairs' objects are evicted, then measures. */
  settle(): Promise<FloorIdle>;
  close(): void;
}

/**
 * Brings `count` pairs up, 128 at a time (both sockets, offer, answer), and leaves them idle. `stop()` may end the
 * bring-up early with a reason (the machine's memory running low, say).
 */
export async function floorIdleSetUp(
  floor: Floor,
  count: number,
  options: {
    maxSetupMs: number;
    /**
     * At most this many new pairs a second: the gateway's own pace. Brought up faster, every object would still be
     * in memory with its SQLite files open (~7 descriptors a pair) when the last ones arrive — more than the
     * open-files limit allows at a few thousand pairs — where the gateway's earlier ones had hibernated meanwhile.
     */
    pairsPerSecond?: number;
    stop?: () => string | undefined;
    progress: (line: string) => void;
  },
): Promise<FloorIdleRun> {
  const { processes } = floor;
  const baseline = snapshot(processes);
  const pairs: BarePair[] = [];
  const started = performance.now();
  let stopped: string | undefined;
  const stopProgress = every(5000, () => `  … floor: ${pairs.length}/${count} pairs up`, options.progress);
  const setup = await runLimited(
    count,
    128,
    async (index) => {
      if (options.pairsPerSecond) {
        const due = started + (index / options.pairsPerSecond) * 1000;
        if (due > performance.now()) await sleep(due - performance.now());
      }
      const pair = await withTimeout(openPair(floor, `idle-${index}`, false), 30_000, "bare pair: sockets");
      try {
        await offerAnswer(pair, 30_000);
      } catch (error) {
        closePairs([pair]);
        throw error;
      }
      pairs.push(pair);
    },
    () => {
      stopped ??= options.stop?.();
      if (!stopped && performance.now() - started > options.maxSetupMs)
        stopped = `time allowed for bring-up (${(options.maxSetupMs / 1000).toFixed(0)} s)`;
      return stopped !== undefined;
    },
  );
  stopProgress();
  const setupSeconds = (performance.now() - started) / 1000;
  const active = snapshot(processes);
  const up = pairs.length;
  // Watched from now on (while the caller does other things): when the objects were evicted, and the memory then.
  const settleStarted = performance.now();
  const settled = (async () => {
    for (;;) {
      const now = snapshot(processes);
      if (floorResident(now) <= Math.max(2, up * 0.001) || performance.now() - settleStarted > 60_000) {
        return { hibernated: now, settleSeconds: (performance.now() - settleStarted) / 1000 };
      }
      await sleep(1000);
    }
  })();
  return {
    async settle() {
      const { hibernated, settleSeconds } = await settled;
      return {
        wanted: count,
        pairs: up,
        failed: setup.failed,
        errors: setup.errors,
        setupSeconds,
        baseline,
        active,
        hibernated,
        settleSeconds,
        residentHibernated: floorResident(hibernated),
        ...(stopped && { scaledBecause: stopped }),
      };
    },
    close: () => closePairs(pairs),
  };
}
