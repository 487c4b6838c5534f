/**
 * One timed stretch of one path (every pair running closed-loop exchanges: an SDP round trip, then ICE round trips),
 * and a path's stretches merged into one row of the report.
 */
import type { Storage } from "../../lib/fleet.ts";
import { distribution, type Distribution } from "../../harness/stats.ts";
import type { Pair } from "./pairs.ts";

export const PATHS = ["floor", "peerjs", "gateway"] as const;
export type PathName = (typeof PATHS)[number];
/** ICE round trips after each SDP round trip, as in a connect with a few trickled candidates. */
export const ICE_PER_EXCHANGE = 4;

export interface PathFigures {
  path: PathName;
  sessions: number;
  /** Every round trip (SDP and ICE, 1 : 4). */
  all: Distribution;
  sdp: Distribution;
  ice: Distribution;
  /** Relayed messages per second (a round trip relays two). */
  messagesPerSecond: number;
  /** Server CPU (user + system, all its processes) per relayed message. */
  cpuUsPerMessage: number;
  /** For the gateway: the part of that CPU spent in wrangler's local proxy (not there in production). */
  proxyCpuUsPerMessage?: number;
  failed: number;
  seconds: number;
}

export interface PeersFigures {
  storage: Storage;
  levels: number[];
  rows: PathFigures[];
  setup: { sessions: number; seconds: number }[];
  fileLimit: { before: number; after: number };
}

/**
 * How many rounds the paths take turns in, per level: the most at 1 session, where a round trip takes well under a
 * millisecond and drift matters most; at 1,000 a single stretch per path (each takes seconds).
 */
export const roundsAt = (sessions: number) => (sessions === 1 ? 10 : sessions <= 100 ? 5 : 1);

export interface CpuMeter {
  total(): number;
  proxy?(): number;
}

/** One timed stretch of one path: its round trips and what it cost; stretches of a path are merged by `combine`. */
export interface Stretch {
  sdp: number[];
  ice: number[];
  failed: number;
  seconds: number;
  cpuUs: number;
  proxyCpuUs?: number;
}

/** A path's stretches as one row: latencies from all their round trips; rates over their summed time. */
export function combine(path: PathName, sessions: number, stretches: Stretch[]): PathFigures {
  const sum = (pick: (stretch: Stretch) => number) => stretches.reduce((total, stretch) => total + pick(stretch), 0);
  const sdp = stretches.flatMap((stretch) => stretch.sdp);
  const ice = stretches.flatMap((stretch) => stretch.ice);
  const messages = 2 * (sdp.length + ice.length);
  const seconds = sum((stretch) => stretch.seconds);
  return {
    path,
    sessions,
    all: distribution([...sdp, ...ice]),
    sdp: distribution(sdp),
    ice: distribution(ice),
    messagesPerSecond: messages / seconds,
    cpuUsPerMessage: sum((stretch) => stretch.cpuUs) / messages,
    ...(stretches[0]?.proxyCpuUs !== undefined && { proxyCpuUsPerMessage: sum((stretch) => stretch.proxyCpuUs ?? 0) / messages }),
    failed: sum((stretch) => stretch.failed),
    seconds,
  };
}

export async function measure(pairs: Pair[], exchanges: number, cpu: CpuMeter, deadline: number): Promise<Stretch> {
  // Warm-up: one exchange per session (JIT, connection state), not measured.
  await Promise.allSettled(
    pairs.map(async (pair) => {
      await pair.sdp();
      await pair.ice();
    }),
  );
  const sdp: number[] = [];
  const ice: number[] = [];
  let failed = 0;
  const cpuBefore = cpu.total();
  const proxyBefore = cpu.proxy?.() ?? 0;
  const started = performance.now();
  const timed = async (roundTrip: () => Promise<void>, into: number[]) => {
    const t0 = performance.now();
    try {
      await roundTrip();
      into.push(performance.now() - t0);
    } catch {
      failed++;
    }
  };
  await Promise.all(
    pairs.map(async (pair) => {
      for (let e = 0; e < exchanges && Date.now() < deadline; e++) {
        await timed(() => pair.sdp(), sdp);
        for (let k = 0; k < ICE_PER_EXCHANGE; k++) await timed(() => pair.ice(), ice);
      }
    }),
  );
  return {
    sdp,
    ice,
    failed,
    seconds: (performance.now() - started) / 1000,
    cpuUs: (cpu.total() - cpuBefore) * 1000,
    ...(cpu.proxy && { proxyCpuUs: (cpu.proxy() - proxyBefore) * 1000 }),
  };
}
