/** The floor's burst and commands (bench/lib/load-floor.ts) with the gateway's counts and window. */
import { grouped } from "../../harness/format.ts";
import type { SuiteContext } from "../../harness/suite.ts";
import { every } from "../../lib/fleet.ts";
import { floorBurst, floorCommands, type Floor } from "../../lib/load-floor.ts";
import { ms } from "./report.ts";
import { WINDOW, type FloorFigures, type Settings } from "./settings.ts";

/**
 * The bare relay floor with the gateway's counts: the burst's N pairs at once, then commands on N pairs with the same
 * count per pair and window (the floor's pairs for commands are fresh ones storing a row per frame).
 */
export async function floorBurstAndCommands(ctx: SuiteContext, floor: Floor, settings: Settings): Promise<Omit<FloorFigures, "idle">> {
  ctx.progress(`floor: ${settings.burst} bare DO pairs at once (two sockets, offer, answer) …`);
  const burst = await floorBurst(floor, settings.burst, 60_000, ctx.progress);
  ctx.progress(
    `floor: ${burst.ready}/${burst.pairs} ready in ${burst.seconds.toFixed(1)} s; connect → ready p50 ${ms(burst.connectToReady.p50)} ms, p99 ${ms(burst.connectToReady.p99)} ms`,
  );

  ctx.progress(`floor: commands on ${settings.burst} bare DO pairs × ${settings.clean}, window ${WINDOW}, one stored row per frame …`);
  let progressed = 0;
  const stop = every(3000, () => `  … floor: ${progressed.toLocaleString("en-US")} acknowledgements`, ctx.progress);
  const commands = await floorCommands(
    floor,
    settings.burst,
    { perPair: settings.clean, window: WINDOW, maxMs: ctx.quick ? 20_000 : 120_000 },
    () => progressed++,
  );
  stop();
  ctx.progress(`floor: ${grouped(commands.commands)} commands in ${commands.seconds.toFixed(1)} s = ${commands.perSecond.toFixed(0)}/s`);
  return { burst, commands };
}
