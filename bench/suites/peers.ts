/**
 * Side by side, in one run on one machine: the same SDP- and ICE-sized signaling messages relayed between two ends
 * of a session by
 *   - the floor: a raw loopback WebSocket relay in one Node process (bench/floor/ws-relay.ts: no parsing, no auth);
 *   - the peer: a PeerJS server (npm `peer`, bench/peers/peerjs-server.ts), what most hobby projects pick;
 *   - ours: the gateway under `wrangler dev` (workerd, local tracing off): client ─ws→ Worker → SessionRelay Durable
 *     Object (validate, store the negotiation, forward) ─ws→ runtime, and the runtime's answer back the same way;
 * at 1, 100 and 1,000 concurrent sessions. Each session runs closed-loop exchanges like a real connect: one offer
 * answered by an answer (the SDP round trip), then four client candidates each answered by a runtime candidate (ICE
 * round trips). Latency is the round trip seen by the client (two relayed messages); CPU is the server's, from /proc.
 *
 * The relays' pairs, the measurement and the report are in bench/suites/peers/.
 */
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { clientToken } from "../../tools/gateway.ts";
import {
  bringUp,
  closeSession,
  every,
  gatewayProcesses,
  RuntimePool,
  runLimited,
  snapshot,
  startAll,
  startLoadGateway,
  startNodeServer,
  type LiveSession,
  type Storage,
} from "../lib/fleet.ts";
import { cpuMs, groupCpuMs, raiseFileLimit } from "../../tools/procfs.ts";
import { combine, measure, PATHS, roundsAt, type CpuMeter, type PeersFigures, type PathName, type Stretch } from "./peers/measure.ts";
import { floorPair, gatewayPair, openPairs, peerjsPair } from "./peers/pairs.ts";
import { chart, find, markdown, meetsTargets, ms } from "./peers/report.ts";

export type { PathFigures, PeersFigures } from "./peers/measure.ts";

export const name = "peers";
export const title = "Side by side: raw relay floor, PeerJS and the gateway";
export const order = 10;

interface Settings {
  levels: number[];
  /** Exchanges (1 SDP + 4 ICE round trips) per session at each level. */
  exchanges: (sessions: number) => number;
}

/** `items` rotated left by `by`. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

const FULL: Settings = { levels: [1, 100, 1000], exchanges: (n) => (n === 1 ? 100 : n <= 100 ? 10 : 2) };
/** Quick: no 1,000-session level (bringing 1,000 gateway sessions up alone takes ~15 s here). */
const QUICK: Settings = { levels: [1, 100], exchanges: (n) => (n === 1 ? 20 : 2) };

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const settings = ctx.quick ? QUICK : FULL;
  const storage: Storage = process.env.BENCH_STATE === "disk" ? "disk" : "tmpfs";
  const maxLevel = Math.max(...settings.levels);
  // Per session: 2 client sockets here; in workerd ~2 per socket in the Worker's runtime and ~4 in wrangler's proxy.
  const limit = raiseFileLimit(Math.max(65_536, maxLevel * 16));
  const levels = settings.levels.filter((level) => level * 10 + 1000 <= limit.after.soft);
  const figures: PeersFigures = { storage, levels, rows: [], setup: [], fileLimit: { before: limit.before.soft, after: limit.after.soft } };
  const suiteDeadline = Date.now() + (ctx.quick ? 60_000 : 300_000);

  ctx.progress(`starting the floor relay, the PeerJS server and the gateway (state on ${storage}) …`);
  const [floor, peerjs, gateway] = await startAll(
    startNodeServer("bench/floor/ws-relay.ts"),
    startNodeServer("bench/peers/peerjs-server.ts"),
    startLoadGateway(storage),
  );
  let pool: RuntimePool | undefined;
  const sessions: LiveSession[] = [];
  try {
    const processes = gatewayProcesses(gateway);
    const gatewayCpu: CpuMeter = { total: () => snapshot(processes).cpuMs, proxy: () => processes.proxy.reduce((sum, pid) => sum + cpuMs(pid), 0) };
    const jwt = await clientToken(gateway);
    pool = await RuntimePool.start(gateway, "bench-signaling", maxLevel);
    for (const level of levels) {
      const exchanges = settings.exchanges(level);
      // Each path gets its own time box; bringing sessions up gets another.
      const deadline = () => Math.min(suiteDeadline, Date.now() + (ctx.quick ? 15_000 : 60_000));
      const label = `${level} session${level === 1 ? "" : "s"}`;

      if (sessions.length < level) {
        const missing = level - sessions.length;
        ctx.progress(`${label}: gateway, bringing ${missing} more session(s) to ACTIVE …`);
        const setupStarted = performance.now();
        const setupDeadline = Math.min(suiteDeadline, Date.now() + (ctx.quick ? 30_000 : 120_000));
        const stop = every(5000, () => `  … ${sessions.length}/${level} sessions ACTIVE`, ctx.progress);
        const setup = await runLimited(
          missing,
          64,
          async () => {
            sessions.push(await bringUp(gateway.url, jwt, pool!, 60_000));
          },
          () => Date.now() > setupDeadline,
        );
        stop();
        figures.setup.push({ sessions: missing, seconds: (performance.now() - setupStarted) / 1000 });
        if (setup.failed > 0 || sessions.length < level) {
          throw new Error(`only ${sessions.length} of ${level} gateway sessions came up (${setup.failed} failed: ${setup.errors.join("; ")})`);
        }
      }
      // The three paths take turns, in rounds, each round in another order: a machine that drifts (another
      // process, the CPU's clock) weighs on all three alike rather than on whichever ran during the drift.
      const rounds = roundsAt(level);
      const perRound = Math.max(1, Math.round(exchanges / rounds));
      const stretches: Record<PathName, Stretch[]> = { floor: [], peerjs: [], gateway: [] };
      for (let round = 0; round < rounds; round++) {
        ctx.progress(`${label}: ${rounds > 1 ? `round ${round + 1}/${rounds}, ` : ""}floor, PeerJS and the gateway in turn …`);
        for (const path of rotate(PATHS, round)) {
          if (path === "floor") {
            const pairs = await openPairs(level, (i) => floorPair(floor.port, `${level}-${round}-${i}`));
            stretches.floor.push(await measure(pairs, perRound, { total: () => groupCpuMs(floor.pid) }, deadline()));
            for (const pair of pairs) pair.close();
          } else if (path === "peerjs") {
            const pairs = await openPairs(level, (i) => peerjsPair(peerjs.port, `p${level}r${round}x${i}`));
            stretches.peerjs.push(await measure(pairs, perRound, { total: () => groupCpuMs(peerjs.pid) }, deadline()));
            for (const pair of pairs) pair.close();
          } else {
            stretches.gateway.push(await measure(sessions.slice(0, level).map(gatewayPair), perRound, gatewayCpu, deadline()));
          }
        }
      }
      for (const path of PATHS) figures.rows.push(combine(path, level, stretches[path]));
      const row = figures.rows.at(-1)!;
      ctx.progress(
        `${label}: p50 floor ${ms(find(figures, "floor", level).all.p50)}, PeerJS ${ms(find(figures, "peerjs", level).all.p50)}, gateway ${ms(row.all.p50)} ms`,
      );
    }
  } finally {
    for (const session of sessions) closeSession(session);
    pool?.close();
    await Promise.allSettled([gateway.stop(), floor.stop(), peerjs.stop()]);
  }
  const verdict = meetsTargets(figures);
  return { figures, markdown: markdown(figures, verdict, ctx.quick), passed: verdict.passed, charts: [chart(figures)] };
}
