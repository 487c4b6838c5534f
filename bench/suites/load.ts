/**
 * Scale and load with scripted clients and runtimes (real protocol, real sockets, no media), against the gateway
 * under `wrangler dev` (workerd, tracing off), account limits raised for the bench:
 *   1. burst: N sessions created and brought to ACTIVE all at once; connect → ready per session;
 *   2. commands: on those sessions, pipelined commands persisted until the runtime acknowledges them, commands/s;
 *   3. faults: 100 commands per session with 3 forced client disconnects and 1 forced runtime disconnect each,
 *      reconnecting inside the grace window; the runtime checks 0 lost, 0 duplicated, order kept, payload intact;
 *   4. idle scale (a fresh gateway): many concurrent idle sessions, their objects hibernated (checked: their SQLite
 *      files closed), keep-alive pings answered without waking them, and the gateway's resident memory.
 * Side by side, in the same run, with the same counts and windows: the floor (bench/lib/load-floor.ts), a bare relay
 * Durable Object per pair (bench/workers/bare-relay) under its own `wrangler dev`, for the burst, the commands and the
 * idle memory. Absolute times drift with the machine; the ratios gateway ÷ floor are the headline.
 *
 * The runs, the report and the charts are in bench/suites/load/.
 */
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import type { CommandTally } from "../lib/commands.ts";
import { startAll, startLoadGateway, type Storage } from "../lib/fleet.ts";
import { startFloor, type Floor, type FloorIdle } from "../lib/load-floor.ts";
import type { TestGateway } from "../../tools/gateway.ts";
import { raiseFileLimit } from "../../tools/procfs.ts";
import { charts } from "./load/charts.ts";
import { floorBurstAndCommands } from "./load/floor-run.ts";
import { burstAndCommands } from "./load/gateway-run.ts";
import { idleScale } from "./load/idle.ts";
import { markdown, verdictOf } from "./load/report.ts";
import { FILES_PER_IDLE_SESSION, FULL, QUICK, type BurstFigures, type FloorFigures, type IdleFigures, type LoadFigures } from "./load/settings.ts";

export type { BurstFigures, FloorFigures, IdleFigures, LoadFigures } from "./load/settings.ts";

export const name = "load";
export const title = "Scale and load: burst, commands with faults, idle sessions";
export const order = 20;

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const settings = ctx.quick ? QUICK : FULL;
  const storage: Storage = process.env.BENCH_STATE === "disk" ? "disk" : "tmpfs";
  const limit = raiseFileLimit(Math.max(65_536, settings.idle * FILES_PER_IDLE_SESSION * 2));
  const fileLimit = { before: limit.before.soft, after: limit.after.soft };

  // A full run measures idle memory on a fresh gateway and a fresh floor (a process keeps the memory an earlier phase
  // made it take, which would hide what idle sessions cost); a quick one reuses both (saves two starts). The floor
  // gets its own `wrangler dev`, started alongside the first gateway.
  ctx.progress(`gateway for burst and commands, and the floor (bare relay DO, its own wrangler dev), state on ${storage} …`);
  const [first, firstFloor] = await startAll<[TestGateway, Floor]>(startLoadGateway(storage), startFloor(storage));
  let second: TestGateway | undefined;
  let secondFloor: Floor | undefined;
  let burst: BurstFigures;
  let clean: CommandTally;
  let faults: CommandTally;
  let idle: IdleFigures;
  let floorIdle: FloorIdle;
  let floorRuns: Omit<FloorFigures, "idle">;
  try {
    // The floor's burst and commands first: their objects are evicted by the time the idle floor takes its baseline.
    floorRuns = await floorBurstAndCommands(ctx, firstFloor, settings);
    ({ burst, clean, faults } = await burstAndCommands(ctx, first, settings));
    if (!ctx.quick) {
      await Promise.all([first.stop(), firstFloor.stop()]);
      ctx.progress(`fresh gateway and floor for idle sessions …`);
      [second, secondFloor] = await startAll<[TestGateway, Floor]>(startLoadGateway(storage), startFloor(storage));
    }
    ({ idle, floorIdle } = await idleScale(ctx, second ?? first, settings, fileLimit.after, second !== undefined, secondFloor ?? firstFloor));
  } finally {
    await Promise.all([first.stop(), second?.stop(), firstFloor.stop(), secondFloor?.stop()]);
  }

  const figures: LoadFigures = { storage, fileLimit, burst, clean, faults, idle, floor: { ...floorRuns, idle: floorIdle } };
  const verdict = verdictOf(figures, settings);
  return {
    figures: {
      ...figures,
      burst: { ...burst, samples: undefined },
      floor: { ...figures.floor, burst: { ...figures.floor.burst, samples: undefined } },
    },
    markdown: markdown(figures, settings, verdict, ctx.quick),
    passed: verdict.every((check) => check.ok),
    charts: charts(figures),
  };
}
