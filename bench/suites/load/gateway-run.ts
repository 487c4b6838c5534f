/**
 * The gateway's burst, then commands on the same sessions: N sessions brought to ACTIVE at once, then pipelined
 * commands without faults, then with forced client and runtime disconnects; the sessions are ended properly after.
 */
import os from "node:os";
import type { SuiteContext } from "../../harness/suite.ts";
import { distribution } from "../../harness/stats.ts";
import { driveAll, endSessions, type CommandSession } from "../../lib/commands.ts";
import { bringUp, closeSession, every, gatewayProcesses, RuntimePool, snapshot, type LiveSession } from "../../lib/fleet.ts";
import { clientToken, type TestGateway } from "../../../tools/gateway.ts";
import { cpuMs, machineBusy, totalCpuMs } from "../../../tools/procfs.ts";
import { MAX_RECONNECT_DELAY_MS, WINDOW, type BurstFigures, type Settings } from "./settings.ts";

export async function burstAndCommands(ctx: SuiteContext, gateway: TestGateway, settings: Settings) {
  const processes = gatewayProcesses(gateway);
  // Where the machine's time goes (for the progress lines): the Worker's workerd, the proxy, us.
  let last = { at: performance.now(), runtime: 0, proxy: 0, client: 0 };
  const cpuShares = () => {
    const now = { at: performance.now(), runtime: totalCpuMs(processes.runtime), proxy: totalCpuMs(processes.proxy), client: cpuMs(process.pid) };
    const share = (key: "runtime" | "proxy" | "client") => `${(((now[key] - last[key]) / (now.at - last.at)) * 100).toFixed(0)} %`;
    const line = `CPU: Worker ${share("runtime")}, proxy ${share("proxy")}, clients+runtimes ${share("client")}, load ${os.loadavg()[0]!.toFixed(1)}`;
    last = now;
    return line;
  };
  cpuShares();
  const jwt = await clientToken(gateway);
  const pool = await RuntimePool.start(gateway, "bench-load", settings.burst);
  const live: LiveSession[] = [];
  try {
    // 1. Burst: every session starts at once.
    ctx.progress(`burst: ${settings.burst} sessions at once …`);
    const cpuBefore = snapshot(processes).cpuMs;
    const machine = machineBusy();
    const sharesBefore = { runtime: totalCpuMs(processes.runtime), proxy: totalCpuMs(processes.proxy), client: cpuMs(process.pid) };
    const started = performance.now();
    const errors: string[] = [];
    let failed = 0;
    const stop = every(2000, () => `  … ${live.length}/${settings.burst} ACTIVE; ${cpuShares()}`, ctx.progress);
    await Promise.all(
      Array.from({ length: settings.burst }, async () => {
        try {
          live.push(await bringUp(gateway.url, jwt, pool, 120_000));
        } catch (error) {
          failed++;
          if (errors.length < 5) errors.push((error as Error).message);
        }
      }),
    );
    stop();
    const seconds = (performance.now() - started) / 1000;
    const busy = (now: number, before: number) => (now - before) / (seconds * 1000);
    const cpuShare = {
      runtime: busy(totalCpuMs(processes.runtime), sharesBefore.runtime),
      proxy: busy(totalCpuMs(processes.proxy), sharesBefore.proxy),
      client: busy(cpuMs(process.pid), sharesBefore.client),
    };
    const samples = live.map((session) => session.timings.ready);
    const burst: BurstFigures = {
      sessions: settings.burst,
      ready: live.length,
      failed,
      errors,
      connectToReady: distribution(samples),
      created: distribution(live.map((session) => session.timings.created)),
      assigned: distribution(live.map((session) => session.timings.assigned)),
      seconds,
      cpuMsPerSession: (snapshot(processes).cpuMs - cpuBefore) / Math.max(1, live.length),
      cpuShare,
      machine: machine(),
      samples,
    };
    ctx.progress(
      `burst: ${live.length}/${settings.burst} ready in ${seconds.toFixed(1)} s; connect → ready p50 ${burst.connectToReady.p50.toFixed(0)} ms, p99 ${burst.connectToReady.p99.toFixed(0)} ms`,
    );

    const serverCpu = () => snapshot(processes).cpuMs;
    const proxyCpu = () => processes.proxy.reduce((sum, pid) => sum + cpuMs(pid), 0);
    const sessions: CommandSession[] = live.map((session, index) => ({
      index,
      live: session,
      gatewayUrl: gateway.url,
      jwt,
      nextSeq: 1,
      processed: 0,
    }));

    // 2. Commands, no faults.
    const cleanTotal = sessions.length * settings.clean;
    ctx.progress(`commands: ${sessions.length} sessions × ${settings.clean}, no faults …`);
    let progressed = 0;
    let proxyBefore = proxyCpu();
    const stopClean = every(3000, () => `  … ${progressed.toLocaleString("en-US")} command statuses; ${cpuShares()}`, ctx.progress);
    const clean = await driveAll(
      sessions,
      {
        perSession: settings.clean,
        window: WINDOW,
        clientDrops: 0,
        runtimeDrops: 0,
        maxReconnectDelayMs: 0,
        deadline: Date.now() + (ctx.quick ? 20_000 : 120_000),
      },
      () => progressed++,
      serverCpu,
    );
    stopClean();
    clean.proxyCpuUsPerCommand = ((proxyCpu() - proxyBefore) * 1000) / Math.max(1, clean.commands);
    ctx.progress(`commands: ${cleanTotal.toLocaleString("en-US")} in ${clean.seconds.toFixed(1)} s = ${clean.perSecond.toFixed(0)}/s`);

    // 3. Commands with faults.
    const { perSession, clientDrops, runtimeDrops } = settings.faults;
    ctx.progress(`faults: ${sessions.length} sessions × ${perSession} commands, ${clientDrops} client + ${runtimeDrops} runtime disconnects each …`);
    progressed = 0;
    proxyBefore = proxyCpu();
    const stopFaults = every(3000, () => `  … ${progressed.toLocaleString("en-US")} command statuses; ${cpuShares()}`, ctx.progress);
    const faults = await driveAll(
      sessions,
      {
        perSession,
        window: WINDOW,
        clientDrops,
        runtimeDrops,
        maxReconnectDelayMs: MAX_RECONNECT_DELAY_MS,
        deadline: Date.now() + (ctx.quick ? 30_000 : 300_000),
      },
      () => progressed++,
      serverCpu,
    );
    stopFaults();
    faults.proxyCpuUsPerCommand = ((proxyCpu() - proxyBefore) * 1000) / Math.max(1, faults.commands);
    ctx.progress(
      `faults: ${faults.completed}/${faults.sessions} sessions done in ${faults.seconds.toFixed(1)} s (${faults.perSecond.toFixed(0)} commands/s); lost ${faults.lost}, duplicated ${faults.duplicated}, out of order ${faults.outOfOrder}`,
    );
    // Ended properly (not just dropped): a quick run measures idle sessions on this same gateway next.
    ctx.progress(`ending the ${live.length} sessions …`);
    await endSessions(live.splice(0), 10_000);
    return { burst, clean, faults };
  } finally {
    for (const session of live) closeSession(session);
    pool.close();
  }
}
