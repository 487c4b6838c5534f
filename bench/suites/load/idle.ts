/**
 * Idle scale: many concurrent idle sessions, their objects hibernated (counted by their SQLite files closing), a
 * keep-alive ping on every client socket, one command on a sample of hibernated sessions, and the gateway's memory;
 * the floor's idle pairs are brought up while the gateway's objects settle.
 */
import { mib } from "../../harness/format.ts";
import { distribution } from "../../harness/stats.ts";
import type { SuiteContext } from "../../harness/suite.ts";
import { keepAlive } from "../../lib/commands.ts";
import {
  bringUp,
  closeSession,
  every,
  gatewayProcesses,
  RuntimePool,
  runLimited,
  sleep,
  snapshot,
  type LiveSession,
  type ServerSnapshot,
} from "../../lib/fleet.ts";
import { floorIdleSetUp, type Floor, type FloorIdle, type FloorIdleRun } from "../../lib/load-floor.ts";
import { clientToken, type TestGateway } from "../../../tools/gateway.ts";
import { memAvailableKiB, rssKiB } from "../../../tools/procfs.ts";
import { FILES_PER_IDLE_SESSION, type IdleFigures, type Settings } from "./settings.ts";

/**
 * Idle sessions on the gateway; and, as many bare relay pairs on the floor, brought up while the gateway's objects
 * settle (the gateway's sessions are all up by then; only its eviction timers run) and measured once evicted.
 */
export async function idleScale(
  ctx: SuiteContext,
  gateway: TestGateway,
  settings: Settings,
  fileLimit: number,
  fresh: boolean,
  floor: Floor,
): Promise<{ idle: IdleFigures; floorIdle: FloorIdle }> {
  // Every process of the run has this limit (children inherit it): scale down rather than fail on EMFILE.
  const fitting = Math.floor((fileLimit - 2000) / FILES_PER_IDLE_SESSION);
  const count = Math.min(settings.idle, fitting);
  let scaledBecause =
    count < settings.idle
      ? `open-files limit (\`ulimit -n\` ${fileLimit.toLocaleString("en-US")}, which this process cannot raise: the busiest process needs ~${FILES_PER_IDLE_SESSION} per session)`
      : undefined;
  if (scaledBecause) ctx.progress(`idle: scaled to ${count} sessions by the ${scaledBecause}`);

  const processes = gatewayProcesses(gateway);
  const baseline = snapshot(processes); // before this phase's runtimes and sessions
  const jwt = await clientToken(gateway);
  const pool = await RuntimePool.start(gateway, "bench-idle", count);
  const live: LiveSession[] = [];
  let floorRun: FloorIdleRun | undefined;
  try {
    ctx.progress(`idle: bringing ${count.toLocaleString("en-US")} sessions to ACTIVE, 128 at a time …`);
    const started = performance.now();
    const rate = () => (live.length / ((performance.now() - started) / 1000)).toFixed(0);
    const stop = every(
      5000,
      () =>
        `  … ${live.length.toLocaleString("en-US")}/${count.toLocaleString("en-US")} ACTIVE (${rate()}/s), workerd RSS ${mib(snapshot(processes).rssKiB.total)} MiB, ${mib(availableKiB())} MiB available`,
      ctx.progress,
    );
    let lowMemory: string | undefined;
    const setup = await runLimited(
      count,
      128,
      async () => {
        live.push(await bringUp(gateway.url, jwt, pool, 60_000));
      },
      () => {
        // Leave the machine room: it is shared.
        if (!lowMemory && availableKiB() < MIN_AVAILABLE_KIB)
          lowMemory = `memory available on the machine (stopped at ${mib(availableKiB())} MiB available)`;
        return lowMemory !== undefined || performance.now() - started > (ctx.quick ? 30_000 : 300_000);
      },
    );
    stop();
    if (lowMemory) scaledBecause = lowMemory;
    const setupSeconds = (performance.now() - started) / 1000;
    const active = snapshot(processes);
    ctx.progress(`idle: ${live.length} ACTIVE in ${setupSeconds.toFixed(0)} s; waiting for their objects to hibernate …`);

    // Hibernated objects close their SQLite files: wait until (nearly) all are closed.
    const settleStarted = performance.now();
    const settling = (async () => {
      for (;;) {
        const now = snapshot(processes);
        if (resident(now) <= Math.max(2, live.length * 0.001) || performance.now() - settleStarted >= 60_000) return now;
        await sleep(1000);
      }
    })();
    // Meanwhile the floor: as many bare relay pairs, left idle in turn.
    const pace = live.length / setupSeconds;
    ctx.progress(
      `idle: meanwhile the floor: ${live.length.toLocaleString("en-US")} bare DO pairs (two sockets, offer, answer), at the gateway's pace (${pace.toFixed(0)}/s) …`,
    );
    floorRun = await floorIdleSetUp(floor, live.length, {
      maxSetupMs: ctx.quick ? 30_000 : 300_000,
      pairsPerSecond: pace,
      stop: () =>
        availableKiB() < MIN_AVAILABLE_KIB ? `memory available on the machine (stopped at ${mib(availableKiB())} MiB available)` : undefined,
      progress: ctx.progress,
    });
    const hibernated = await settling;
    const settleSeconds = (performance.now() - settleStarted) / 1000;
    const residentHibernated = resident(hibernated);
    ctx.progress(
      `idle: ${residentHibernated} of ${live.length} objects still in memory after ${settleSeconds.toFixed(0)} s; workerd RSS ${mib(hibernated.rssKiB.total)} MiB`,
    );

    ctx.progress(`idle: a keep-alive ping on every client socket …`);
    const pings = await keepAlive(live, 20_000);
    await sleep(500);
    const residentAfterPings = resident(snapshot(processes));

    // A command on a sample of hibernated sessions: each wakes its object, which relays it to the runtime.
    const sample = live.filter((_, index) => index % Math.max(1, Math.floor(live.length / 100)) === 0).slice(0, 100);
    ctx.progress(`idle: waking ${sample.length} sessions with one command each …`);
    const wakeTimes: number[] = [];
    let wakeFailed = 0;
    await Promise.all(
      sample.map(async (session) => {
        const t0 = performance.now();
        try {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error("no acknowledgement")), 15_000);
            session.runtimePeer.onFrame = (frame) => {
              if (frame.type === "command") session.runtimePeer.send({ type: "command_ack", seq: frame.seq });
              return true;
            };
            session.client.onFrame = (frame) => {
              if (frame.type === "command_status" && frame.state === "acknowledged") {
                clearTimeout(timer);
                resolve();
              }
              return true;
            };
            session.client.send({ type: "command", seq: 1, command: { type: "echo", data: { wake: true } } });
          });
          wakeTimes.push(performance.now() - t0);
        } catch {
          wakeFailed++;
        }
      }),
    );
    ctx.progress(`idle: floor: waiting for the bare DO pairs' objects to hibernate …`);
    const floorIdle = await floorRun.settle();
    ctx.progress(
      `idle: floor: ${floorIdle.residentHibernated} of ${floorIdle.pairs} objects still in memory ${floorIdle.settleSeconds.toFixed(0)} s after the last pair; workerd RSS ${mib(floorIdle.hibernated.rssKiB.total)} MiB (${perIdle(floorIdle.hibernated.rssKiB.total, floorIdle.baseline.rssKiB.total, floorIdle.pairs).toFixed(0)} KiB per pair; the gateway ${perIdle(hibernated.rssKiB.total, baseline.rssKiB.total, live.length).toFixed(0)} KiB per session)`,
    );
    const idle: IdleFigures = {
      wanted: settings.idle,
      sessions: live.length,
      failed: setup.failed + (count - setup.started),
      errors: setup.errors,
      setupSeconds,
      baseline,
      active,
      hibernated,
      settleSeconds,
      residentHibernated,
      residentAfterPings,
      pings,
      wake: distribution(wakeTimes),
      wakeFailed,
      clientRssKiB: rssKiB(process.pid),
      fresh,
      ...(scaledBecause && { scaledBecause }),
    };
    return { idle, floorIdle };
  } finally {
    for (const session of live) closeSession(session);
    pool.close();
    floorRun?.close();
  }
}

/** KiB of RSS per idle session (or pair) over the baseline. */
export const perIdle = (hibernatedKiB: number, baselineKiB: number, count: number) => (hibernatedKiB - baselineKiB) / Math.max(1, count);

/** The gateway's RSS with `wanted` hibernated sessions, from the measured cost per session (linear). */
export function extrapolatedKiB(idle: IdleFigures): { total: number; runtime: number } {
  const at = (pick: (snapshot: ServerSnapshot) => number) =>
    pick(idle.baseline) + ((pick(idle.hibernated) - pick(idle.baseline)) / Math.max(1, idle.sessions)) * idle.wanted;
  return { total: at((s) => s.rssKiB.total), runtime: at((s) => s.rssKiB.runtime) };
}

/** Bring-up stops before the machine's available memory falls below this (it is shared with other work). */
const MIN_AVAILABLE_KIB = 3 * 1024 * 1024;

function availableKiB(): number {
  return memAvailableKiB() ?? Number.MAX_SAFE_INTEGER;
}

/** Session objects in memory: each holds its SQLite database open; a hibernated (evicted) one has closed it. */
export const resident = (now: ServerSnapshot) => now.files.runtime.objects.SessionRelay ?? 0;
