/** What the load suite runs with (counts, windows, targets) and the shapes of what it measures. */
import type { CommandTally } from "../../lib/commands.ts";
import type { Storage } from "../../lib/fleet.ts";
import type { FloorBurst, FloorCommands, FloorIdle, IdleRun } from "../../lib/load-floor.ts";
import type { Distribution } from "../../harness/stats.ts";

export const TARGETS = { burstP99Ms: 1000, idleRssMiB: 1024, commandsPerSecond: 15_000 };

export interface Settings {
  burst: number;
  clean: number;
  faults: { perSession: number; clientDrops: number; runtimeDrops: number };
  idle: number;
}

export const FULL: Settings = { burst: 1000, clean: 10, faults: { perSession: 100, clientDrops: 3, runtimeDrops: 1 }, idle: 10_000 };
export const QUICK: Settings = { burst: 100, clean: 10, faults: { perSession: 30, clientDrops: 3, runtimeDrops: 1 }, idle: 200 };

/**
 * Open files the busiest process holds per idle session (the limit applies to each process): ~4 in this one (the
 * session's client and runtime sockets, and the floor pair's two) and ~4 in the Worker's workerd; with a margin.
 * Clients connect past wrangler's dev proxy (see pastDevProxy), which would otherwise hold ~8 more.
 */
export const FILES_PER_IDLE_SESSION = 5;
/**
 * Commands a client may have sent and not yet seen stored. With 1,000 sessions that is up to 2,000 in flight: on a
 * 2-core machine the gateway's one thread then runs a few seconds behind, and a reconnect waits about that long.
 * (With 16 in flight per session, reconnects waited longer than the 30 s grace window and the gateway ended the
 * sessions; with 4, reconnects took ~13 s on a loaded machine, with 2 ~2 s.) The gateway is saturated either way.
 */
export const WINDOW = 2;
export const MAX_RECONNECT_DELAY_MS = 250;

export interface BurstFigures {
  sessions: number;
  ready: number;
  failed: number;
  errors: string[];
  /** From the start of POST /sessions to `status ACTIVE` on the client's socket. */
  connectToReady: Distribution;
  created: Distribution;
  assigned: Distribution;
  /** All N ready, from the first request. */
  seconds: number;
  cpuMsPerSession: number;
  /** CPU time ÷ wall time over the burst (1 = one core busy all along): the Worker's workerd, the proxy, the clients. */
  cpuShare: { runtime: number; proxy: number; client: number };
  /** The whole machine over the burst, every process (ours and others'): cores busy on average, of `cores`. */
  machine: { cores: number; busy: number };
  samples: number[];
}

export interface IdleFigures extends IdleRun {
  sessions: number;
  /** Session objects still in memory (their SQLite database open), after the pings. */
  residentAfterPings: number;
  pings: { sent: number; answered: number; ms: number };
  /** First command on a hibernated session: client send → `acknowledged` back. */
  wake: Distribution;
  wakeFailed: number;
  clientRssKiB: number;
  /** Measured on a fresh gateway (full run), or on the one the burst and command runs used (quick run). */
  fresh: boolean;
}

/** The floor's runs (bench/lib/load-floor.ts), side by side with the gateway's. */
export interface FloorFigures {
  burst: FloorBurst;
  commands: FloorCommands;
  idle: FloorIdle;
}

export interface LoadFigures {
  storage: Storage;
  fileLimit: { before: number; after: number };
  burst: BurstFigures;
  clean: CommandTally;
  faults: CommandTally;
  idle: IdleFigures;
  floor: FloorFigures;
}
