/** The load suite's verdict against its targets, and its section of BENCHMARKS.md. */
import os from "node:os";
import { grouped, mib, pct, ratio } from "../../harness/format.ts";
import { distribution } from "../../harness/stats.ts";
import type { CommandTally } from "../../lib/commands.ts";
import { localTracing } from "../../lib/fleet.ts";
import { floorResident } from "../../lib/load-floor.ts";
import { ANSWER_SDP, OFFER_SDP } from "../../lib/signaling-samples.ts";
import { describeFileLimit } from "../../../tools/procfs.ts";
import { extrapolatedKiB, perIdle, resident } from "./idle.ts";
import { FILES_PER_IDLE_SESSION, MAX_RECONNECT_DELAY_MS, TARGETS, WINDOW, type IdleFigures, type LoadFigures, type Settings } from "./settings.ts";

/** Whole milliseconds. */
export const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(0) : "n/a");

export function verdictOf(figures: LoadFigures, settings: Settings): { what: string; ok: boolean; value: string }[] {
  const { burst, clean, faults, idle } = figures;
  const faultsClean = faults.lost === 0 && faults.duplicated === 0 && faults.outOfOrder === 0 && faults.altered === 0 && faults.refused === 0;
  const endedSessions = Object.values(faults.ended).reduce((sum, count) => sum + count, 0);
  const best = Math.max(clean.perSecond, faults.perSecond);
  return [
    {
      what: `burst: all ${grouped(settings.burst)} sessions ready`,
      ok: burst.ready === settings.burst,
      value: `${grouped(burst.ready)} ready, ${burst.failed} failed`,
    },
    {
      what: `burst: p99 connect → ready ≤ ${TARGETS.burstP99Ms} ms`,
      ok: burst.connectToReady.p99 <= TARGETS.burstP99Ms,
      value: `${ms(burst.connectToReady.p99)} ms`,
    },
    {
      what: `idle: ${grouped(settings.idle)} concurrent sessions, hibernated`,
      ok: idle.sessions === settings.idle && idle.residentHibernated <= Math.max(2, idle.sessions * 0.001),
      value: `${grouped(idle.sessions)} up${idle.scaledBecause ? " (scaled down: see below)" : ""}, ${grouped(idle.residentHibernated)} objects left in memory`,
    },
    {
      what: `idle: gateway RSS ≤ ${TARGETS.idleRssMiB} MiB`,
      ok: extrapolatedKiB(idle).total / 1024 <= TARGETS.idleRssMiB,
      value:
        idle.sessions === idle.wanted
          ? `${mib(idle.hibernated.rssKiB.total)} MiB`
          : `${mib(idle.hibernated.rssKiB.total)} MiB at ${grouped(idle.sessions)}; ≈ ${mib(extrapolatedKiB(idle).total)} MiB at ${grouped(idle.wanted)} (extrapolated)`,
    },
    {
      what: `faults: 0 lost, 0 duplicated, order kept (${grouped(faults.commands)} commands)`,
      ok: faultsClean && endedSessions === 0 && faults.completed === faults.sessions && faults.sessions === settings.burst,
      value: `${faults.lost} lost, ${faults.duplicated} duplicated, ${faults.outOfOrder} out of order, ${faults.altered} altered, ${faults.refused} refused; ${grouped(faults.completed)}/${grouped(faults.sessions)} sessions finished${endedSessions > 0 ? `, ${grouped(endedSessions)} ended by the gateway` : ""}`,
    },
    {
      what: `commands ≥ ${grouped(TARGETS.commandsPerSecond)}/s across sessions`,
      ok: best >= TARGETS.commandsPerSecond,
      value: `${grouped(best)}/s`,
    },
  ];
}

export function markdown(figures: LoadFigures, settings: Settings, verdict: ReturnType<typeof verdictOf>, quick: boolean): string {
  const { burst, clean, faults, idle, floor } = figures;
  const perSession = idlePerSession(figures);
  const reconnect = distribution(faults.reconnectMs);
  const clientUpgrade = distribution(faults.clientUpgradeMs);
  const clientReconnect = distribution(faults.clientReconnectMs);
  const runtimeReconnect = distribution(faults.runtimeReconnectMs);
  const lines = [
    `Scripted clients and runtimes (bench/lib/fleet.ts, bench/lib/commands.ts) speaking the real protocol over real WebSockets, no media, against the gateway under \`wrangler dev\` (\`X_LOCAL_OBSERVABILITY=${localTracing()}\`), connected straight to the workerd that runs the Worker and its objects (wrangler's dev proxy, a second workerd in front that exists only under \`wrangler dev\`, is bypassed, for the gateway and the floor alike: a deployed Worker's clients have no such hop), the objects' SQLite on ${figures.storage === "tmpfs" ? "tmpfs" : "disk"}. Account limits are raised for the bench: \`LIMIT_CONCURRENT_SESSIONS\`, \`LIMIT_SESSION_CREATIONS_PER_MINUTE\` and \`LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE\` = 100,000 (defaults 5, 50 and 100 would refuse a load test at once); all sessions belong to one account and one model, served by scripted runtimes of up to 1,000 slots each. Clients, runtimes and the gateway share this machine's ${os.cpus().length} cores. Open-files limit (\`ulimit -n\`) for the run: ${describeFileLimit(figures.fileLimit, figures.idle.wanted * FILES_PER_IDLE_SESSION + 2000)}.`,
    "",
    ...floorTable(figures),
    "",
    "| target | result | |",
    "|---|---|---|",
    ...verdict.map((check) => `| ${check.what} | ${check.value} | ${check.ok ? "pass" : "**FAIL**"} |`),
    "",
    ...floorReach(figures, settings),
    "",
    `**Burst.** ${grouped(burst.sessions)} clients start at once: each POSTs /sessions, its runtime is assigned and opens the session socket while the client opens its signaling socket and sends an offer; the runtime answers and reports the peer connection up; ready = \`status ACTIVE\` on the client's socket. All ${grouped(burst.ready)} were ready ${burst.seconds.toFixed(1)} s after the first request (${grouped(burst.ready / burst.seconds)} sessions/s; gateway CPU ${burst.cpuMsPerSession.toFixed(1)} ms per session). ${burstCostSentence(figures)}`,
    "",
    "| from the start of POST /sessions to | p50 ms | p90 ms | p99 ms | max ms |",
    "|---|---:|---:|---:|---:|",
    `| its answer (session created, queued) | ${ms(burst.created.p50)} | ${ms(burst.created.p90)} | ${ms(burst.created.p99)} | ${ms(burst.created.max)} |`,
    `| the runtime's \`assign\` | ${ms(burst.assigned.p50)} | ${ms(burst.assigned.p90)} | ${ms(burst.assigned.p99)} | ${ms(burst.assigned.max)} |`,
    `| **ready** (\`ACTIVE\` on the client's socket) | **${ms(burst.connectToReady.p50)}** | ${ms(burst.connectToReady.p90)} | **${ms(burst.connectToReady.p99)}** | ${ms(burst.connectToReady.max)} |`,
    ...(burst.errors.length > 0 ? ["", `Failures: ${burst.errors.join("; ")}`] : []),
    "",
    `**Commands.** On the same ${grouped(faults.sessions)} sessions, each client sends numbered commands with up to ${WINDOW} not yet confirmed stored; the gateway stores each until the runtime acknowledges it (the runtime acknowledges every 8th, and after 10 ms of quiet); a command counts when the client has seen \`acknowledged\`. The runtime checks every command: in order, never twice, payload matching its seq and session.`,
    "",
    "| run | commands | time s | commands/s | gateway CPU µs/command (proxy's share) | lost | duplicated | out of order | altered | refused | replayed (harmless) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...[
      ["no faults", clean],
      [`${settings.faults.clientDrops} client + ${settings.faults.runtimeDrops} runtime disconnects per session`, faults],
    ].map(([label, tally]) => {
      const t = tally as CommandTally;
      return `| ${String(label)} | ${grouped(t.commands)} | ${t.seconds.toFixed(1)} | **${grouped(t.perSecond)}** | ${grouped(t.serverCpuUsPerCommand ?? Number.NaN)} (${grouped(t.proxyCpuUsPerCommand ?? Number.NaN)}) | ${t.lost} | ${t.duplicated} | ${t.outOfOrder} | ${t.altered} | ${t.refused} | ${grouped(t.replayed)} |`;
    }),
    `| floor (bare DO), no faults | ${grouped(floor.commands.commands)} | ${floor.commands.seconds.toFixed(1)} | **${grouped(floor.commands.perSecond)}** | ${grouped(floor.commands.cpuUsPerCommand)} (${grouped(floor.commands.proxyCpuUsPerCommand)}) | – | – | ${floor.commands.outOfOrder} | – | – | – |`,
    "",
    `Floor: ${grouped(floor.commands.pairs)} bare relay pairs storing one row per frame (\`?writes=1\`), each client sending the gateway's command frame, ${settings.clean} per pair with the same window of ${WINDOW}; the peer acknowledges **each** command at once, and a command counts when its acknowledgement is back at the client (${floor.commands.completed}/${floor.commands.pairs} pairs finished${floor.commands.setupFailed > 0 ? `, ${floor.commands.setupFailed} did not come up: ${floor.commands.errors.join("; ")}` : ""}). That is the closest equivalent of the gateway's window, which waits for the gateway's own per-command \`command_status\`, not for the runtime's batched acknowledgement: a bare relay has no confirmation of its own, and acknowledging every 8th command or after 10 ms would hold a window of ${WINDOW} for 10 ms at a time and measure the timer, not the relay. Per command the floor relays 2 frames and stores 2 rows; the gateway validates, stores, confirms to the client, forwards to the runtime, and relays batched acknowledgements back. Gateway ÷ floor: **${ratio(clean.perSecond, floor.commands.perSecond)}** the commands/s, ${ratio(clean.serverCpuUsPerCommand ?? Number.NaN, floor.commands.cpuUsPerCommand)} the workerd CPU per command.`,
    "",
    `Faults: ${grouped(faults.clientDrops)} client and ${grouped(faults.runtimeDrops)} runtime sockets cut without a close handshake (\`terminate()\`) at random points while commands flowed, each reconnecting after a random pause of up to ${MAX_RECONNECT_DELAY_MS} ms (grace window 30 s): disconnect → new socket's first frame p50 ${ms(reconnect.p50)} ms, p99 ${ms(reconnect.p99)} ms, max ${ms(reconnect.max)} ms (client: upgrade answered p50 ${ms(clientUpgrade.p50)} ms, welcome p50 ${ms(clientReconnect.p50)} ms; runtime: \`session\` p50 ${ms(runtimeReconnect.p50)} ms). After a runtime reconnect (\`hello\` with the highest command it processed) the gateway re-sent ${grouped(faults.resentAfterRuntimeDrop)} commands it had kept stored; after a client reconnect the client resent from the welcome's \`next_command_seq\`, and ${grouped(faults.replayed)} commands it resent had in fact arrived (refused as \`COMMAND_REPLAYED\`, not delivered twice). ${faults.completed}/${faults.sessions} sessions finished${endedSentence(faults)}.${faults.errors.length > 0 ? ` Errors: ${faults.errors.join("; ")}.` : ""}${closesSentence(faults)}`,
    "",
    `**Idle scale** (${idle.fresh ? "a fresh gateway" : "the same gateway, its earlier sessions ended"}). ${grouped(idle.sessions)} sessions brought to ACTIVE, 128 at a time, in ${idle.setupSeconds.toFixed(0)} s${idle.failed > 0 ? ` (${idle.failed} failed: ${idle.errors.join("; ")})` : ""}${idle.scaledBecause ? ` — scaled down from ${grouped(idle.wanted)} by the ${idle.scaledBecause}` : ""}; each holds its client's signaling socket and its runtime's session socket (${grouped(2 * idle.sessions)} WebSockets). Then nothing: ${settleSentence(idle)} A keep-alive \`{"type":"ping"}\` on every client socket: ${grouped(idle.pings.answered)}/${grouped(idle.pings.sent)} answered in ${(idle.pings.ms / 1000).toFixed(1)} s, ${grouped(idle.residentAfterPings)} objects woken (the edge answers it). One command on ${idle.wake.count + idle.wakeFailed} of the hibernated sessions (client → object woken → runtime → acknowledged back): p50 ${ms(idle.wake.p50)} ms, p99 ${ms(idle.wake.p99)} ms${idle.wakeFailed > 0 ? `, ${idle.wakeFailed} failed` : ""}.`,
    "",
    "| gateway processes (RSS, MiB) | before | sessions ACTIVE | hibernated |",
    "|---|---:|---:|---:|",
    `| workerd running the Worker and its objects | ${mib(idle.baseline.rssKiB.runtime)} | ${mib(idle.active.rssKiB.runtime)} | ${mib(idle.hibernated.rssKiB.runtime)} |`,
    `| workerd of wrangler's local proxy (not in production) | ${mib(idle.baseline.rssKiB.proxy)} | ${mib(idle.active.rssKiB.proxy)} | ${mib(idle.hibernated.rssKiB.proxy)} |`,
    `| **total** | ${mib(idle.baseline.rssKiB.total)} | ${mib(idle.active.rssKiB.total)} | **${mib(idle.hibernated.rssKiB.total)}** |`,
    `| session objects in memory (their SQLite database open) | ${grouped(resident(idle.baseline))} | ${grouped(resident(idle.active))} | ${grouped(resident(idle.hibernated))} |`,
    `| open sockets (both processes) | ${grouped(idle.baseline.files.runtime.sockets + idle.baseline.files.proxy.sockets)} | ${grouped(idle.active.files.runtime.sockets + idle.active.files.proxy.sockets)} | ${grouped(idle.hibernated.files.runtime.sockets + idle.hibernated.files.proxy.sockets)} |`,
    `| floor (bare DO), ${grouped(floor.idle.pairs)} pairs: workerd running the Worker and its objects | ${mib(floor.idle.baseline.rssKiB.runtime)} | ${mib(floor.idle.active.rssKiB.runtime)} | ${mib(floor.idle.hibernated.rssKiB.runtime)} |`,
    `| floor: workerd of wrangler's local proxy | ${mib(floor.idle.baseline.rssKiB.proxy)} | ${mib(floor.idle.active.rssKiB.proxy)} | ${mib(floor.idle.hibernated.rssKiB.proxy)} |`,
    `| floor: **total** | ${mib(floor.idle.baseline.rssKiB.total)} | ${mib(floor.idle.active.rssKiB.total)} | **${mib(floor.idle.hibernated.rssKiB.total)}** |`,
    `| floor: pair objects in memory (their SQLite database open) | ${grouped(floorResident(floor.idle.baseline))} | ${grouped(floorResident(floor.idle.active))} | ${grouped(floorResident(floor.idle.hibernated))} |`,
    "",
    `Per idle session: ${perSession.gateway.total.toFixed(0)} KiB of gateway RSS hibernated (${perSession.gateway.runtime.toFixed(0)} KiB in the Worker's process).${
      idle.sessions < idle.wanted
        ? ` At that rate ${grouped(idle.wanted)} sessions would hold ≈ ${mib(extrapolatedKiB(idle).total)} MiB (≈ ${mib(extrapolatedKiB(idle).runtime)} MiB in the Worker's process alone) — a linear extrapolation, not a measurement.`
        : ""
    } The scripted clients and runtimes (this Node process) used ${mib(idle.clientRssKiB)} MiB. Locally workerd holds every hibernated socket itself (in production the edge holds them and the object's memory is freed), so this is an upper bound for the objects' share.`,
    "",
    `Floor: while the gateway's objects settled, ${grouped(floor.idle.pairs)} bare relay pairs (the same count) were brought up on the floor's own ${idle.fresh ? "fresh " : ""}\`wrangler dev\` at the gateway's pace (more at once would hold every object's SQLite files open together, past the open-files limit), in ${floor.idle.setupSeconds.toFixed(0)} s${floor.idle.failed > 0 ? ` (${floor.idle.failed} failed: ${floor.idle.errors.join("; ")})` : ""}${floor.idle.scaledBecause ? ` — stopped early by the ${floor.idle.scaledBecause}` : ""}, each with its two sockets and one offer and answer relayed; ${floor.idle.settleSeconds.toFixed(0)} s after the last one ${grouped(floor.idle.residentHibernated)} of their objects were in memory. Per idle pair: ${perSession.floor.total.toFixed(0)} KiB of RSS (${perSession.floor.runtime.toFixed(0)} KiB in the Worker's process): gateway ÷ floor **${ratio(perSession.gateway.total, perSession.floor.total)}** per session (${ratio(perSession.gateway.runtime, perSession.floor.runtime)} in the Worker's process). A gateway session holds the same two sockets on the same kind of object, plus its state in SQLite.`,
    ...(quick
      ? [
          "",
          `Quick run: ${grouped(settings.burst)}-session burst, ${settings.faults.perSession} commands per session in the fault run, ${grouped(settings.idle)} idle sessions; the floor with the same counts.`,
        ]
      : []),
    "",
    "![Burst: connect → ready](docs/benchmarks-burst.svg)",
    "",
    "![Idle sessions: gateway memory](docs/benchmarks-idle.svg)",
  ];
  return lines.join("\n");
}

/** RSS per idle session of the gateway, and per idle pair of the floor: KiB over each one's baseline. */
function idlePerSession(figures: LoadFigures) {
  const { idle, floor } = figures;
  return {
    gateway: {
      total: perIdle(idle.hibernated.rssKiB.total, idle.baseline.rssKiB.total, idle.sessions),
      runtime: perIdle(idle.hibernated.rssKiB.runtime, idle.baseline.rssKiB.runtime, idle.sessions),
    },
    floor: {
      total: perIdle(floor.idle.hibernated.rssKiB.total, floor.idle.baseline.rssKiB.total, floor.idle.pairs),
      runtime: perIdle(floor.idle.hibernated.rssKiB.runtime, floor.idle.baseline.rssKiB.runtime, floor.idle.pairs),
    },
  };
}

/** The headline: each gateway figure next to the floor's from the same run, and their ratio. */
function floorTable(figures: LoadFigures): string[] {
  const { burst, clean, floor } = figures;
  const perSession = idlePerSession(figures);
  const n = grouped(burst.sessions);
  return [
    `**Side by side with the floor** (the headline: absolute times drift with the machine, which is shared). In the same run, on its own \`wrangler dev\` started the same way (\`X_LOCAL_OBSERVABILITY=${localTracing()}\`, state on ${figures.storage}), the bare relay Worker (bench/workers/bare-relay: one hibernatable Durable Object per pair that forwards frames client ↔ peer untouched — no auth, no parsing, no pool, no session state) driven with the same client counts and windows (bench/lib/load-floor.ts). It is what any relay built on one Durable Object per session pays here.`,
    "",
    "| measure | gateway | floor (bare DO) | gateway ÷ floor |",
    "|---|---:|---:|---:|",
    `| burst, ${n} at once: connect → ready p50, ms | ${ms(burst.connectToReady.p50)} | ${ms(floor.burst.connectToReady.p50)} | **${ratio(burst.connectToReady.p50, floor.burst.connectToReady.p50)}** |`,
    `| burst: connect → ready p99, ms | ${ms(burst.connectToReady.p99)} | ${ms(floor.burst.connectToReady.p99)} | **${ratio(burst.connectToReady.p99, floor.burst.connectToReady.p99)}** |`,
    `| burst: all ${n} ready, s | ${burst.seconds.toFixed(2)} | ${floor.burst.seconds.toFixed(2)} | ${ratio(burst.seconds, floor.burst.seconds)} |`,
    `| burst: workerd CPU (Worker + proxy) per session or pair, ms | ${burst.cpuMsPerSession.toFixed(1)} | ${floor.burst.cpuMsPerPair.toFixed(1)} | ${ratio(burst.cpuMsPerSession, floor.burst.cpuMsPerPair)} |`,
    `| commands/s, ${n} × ${grouped(clean.commands / Math.max(1, clean.sessions))}, window ${WINDOW}, no faults | ${grouped(clean.perSecond)} | ${grouped(floor.commands.perSecond)} | **${ratio(clean.perSecond, floor.commands.perSecond)}** |`,
    `| commands: workerd CPU (Worker + proxy) per command, µs | ${grouped(clean.serverCpuUsPerCommand ?? Number.NaN)} | ${grouped(floor.commands.cpuUsPerCommand)} | ${ratio(clean.serverCpuUsPerCommand ?? Number.NaN, floor.commands.cpuUsPerCommand)} |`,
    `| idle, ${grouped(figures.idle.sessions)} hibernated: RSS (Worker + proxy) per session or pair, KiB | ${perSession.gateway.total.toFixed(0)} | ${perSession.floor.total.toFixed(0)} | **${ratio(perSession.gateway.total, perSession.floor.total)}** |`,
    `| idle: of which in the Worker's process, KiB | ${perSession.gateway.runtime.toFixed(0)} | ${perSession.floor.runtime.toFixed(0)} | ${ratio(perSession.gateway.runtime, perSession.floor.runtime)} |`,
    "",
    `Floor, per run: burst — ${n} pairs at once, each opening its two sockets (client and peer); the client sends an offer-sized frame (${OFFER_SDP.length.toLocaleString("en-US")} bytes of SDP), the peer answers (${ANSWER_SDP.length.toLocaleString("en-US")}); ready = the answer at the client. Commands — fresh pairs storing one row per frame, the gateway's command frame, the same count per pair and window, the peer acknowledging each command (see Commands). Idle — as many pairs as the gateway's idle sessions, one offer and answer each, then left alone until workerd evicted their objects.`,
  ];
}

/** For each absolute target: what the floor reaches on this machine. */
function floorReach(figures: LoadFigures, settings: Settings): string[] {
  const { burst, clean, faults, idle, floor } = figures;
  const floorP99 = floor.burst.connectToReady.p99;
  const best = Math.max(clean.perSecond, faults.perSecond);
  const perSession = idlePerSession(figures);
  const floorIdleKiB = floor.idle.baseline.rssKiB.total + perSession.floor.total * idle.wanted;
  const idleWithin = floorIdleKiB / 1024 <= TARGETS.idleRssMiB;
  return [
    "What the floor reaches on this machine, for each target:",
    "",
    `- burst p99 ≤ ${grouped(TARGETS.burstP99Ms)} ms: the bare DO floor's p99 with the same ${grouped(settings.burst)} at once is ${ms(floorP99)} ms, ${
      floorP99 <= TARGETS.burstP99Ms
        ? "inside the target: a DO relay that does nothing else meets it here"
        : `over the target: no relay built on a Durable Object per session meets it under \`wrangler dev\` on this machine`
    }; ours is ${ratio(burst.connectToReady.p99, floorP99)} the floor.`,
    `- ≥ ${grouped(TARGETS.commandsPerSecond)} commands/s: the bare DO floor reaches ${grouped(floor.commands.perSecond)} commands/s here (the same ${grouped(floor.commands.pairs)} sessions and window of ${WINDOW}, one stored row per frame), ${
      floor.commands.perSecond < TARGETS.commandsPerSecond
        ? `so ${grouped(TARGETS.commandsPerSecond)}/s is not reachable on this machine by any relay built on Durable Objects that stores each command, with these sessions and this window`
        : "so the target is within a DO relay's reach here"
    }; ours is ${ratio(clean.perSecond, floor.commands.perSecond)} the floor${best > clean.perSecond ? ` (${ratio(best, floor.commands.perSecond)} counting the fault run, the better of our two, as the verdict does)` : ""}.`,
    `- ≤ ${grouped(TARGETS.idleRssMiB)} MiB for ${grouped(idle.wanted)} idle sessions: the floor's processes hold ${perSession.floor.total.toFixed(0)} KiB per idle pair over their ${mib(floor.idle.baseline.rssKiB.total)} MiB before, so ${grouped(idle.wanted)} bare pairs would take ≈ ${mib(floorIdleKiB)} MiB${
      floor.idle.pairs < idle.wanted ? ` (extrapolated from ${grouped(floor.idle.pairs)})` : ""
    }, ${idleWithin ? "inside the target" : `over the target: no relay holding two sockets per session in a Durable Object fits it under \`wrangler dev\` on this machine`}; ours is ${ratio(perSession.gateway.total, perSession.floor.total)} the floor per session.`,
  ];
}

/** Where the burst's time went: the CPU shares measured over it, why, and the floor beside it. */
function burstCostSentence(figures: LoadFigures): string {
  const { burst, floor } = figures;
  const { cpuShare, machine } = burst;
  const shares = `Over the burst the Worker's workerd was busy ${pct(cpuShare.runtime)} of the time, wrangler's proxy ${pct(cpuShare.proxy)}, the scripted clients and runtimes ${pct(cpuShare.client)}; the machine as a whole, every process on it included (it is shared), had ${machine.busy.toFixed(1)} of its ${machine.cores} cores busy.`;
  const how = `Slots are not handed out one session at a time: each model's pool (durable-objects/pool/model-pool.ts) reserves every free slot for the head of its queue in one synchronous step and offers the slots to their session objects concurrently, one round of \`assign()\` calls per drain (drains run one after another: sessions queued while a round is out get the next one). What remains is that locally one workerd thread runs the Worker and every object — the pool and all ${grouped(burst.sessions)} session objects — so each session's steps (its POST, enqueue and assignment, two socket upgrades, the offer, the answer, the status) take turns on that thread with every other session's, and the thread shares the cores with the scripted clients and runtimes.`;
  const bound =
    cpuShare.runtime >= 0.75
      ? "That thread was the bottleneck."
      : machine.busy >= 0.9 * machine.cores
        ? `The machine's cores were saturated, so that thread got ${pct(cpuShare.runtime)} of a core: the burst was bound by the CPU it could get, not by waiting.`
        : "Neither that thread nor the machine was busy all along: part of each session's time went to waiting, not computing.";
  const floorLine = `The floor's ${grouped(floor.burst.pairs)} bare pairs at once (two sockets, an offer and an answer each, on the same kind of thread) were all ready in ${floor.burst.seconds.toFixed(1)} s, p99 ${ms(floor.burst.connectToReady.p99)} ms (its Worker's workerd busy ${pct(floor.burst.cpuShare.runtime)}, its proxy ${pct(floor.burst.cpuShare.proxy)}${floor.burst.failed > 0 ? `; ${floor.burst.failed} failed: ${floor.burst.errors.join("; ")}` : ""}): our p99 is ${ratio(burst.connectToReady.p99, floor.burst.connectToReady.p99)} the floor's.`;
  return `${shares} ${how} ${bound} ${floorLine}`;
}

function endedSentence(tally: CommandTally): string {
  const reasons = Object.entries(tally.ended);
  if (reasons.length === 0) return "";
  const total = reasons.reduce((sum, [, count]) => sum + count, 0);
  return `; the gateway ended ${grouped(total)} (${reasons.map(([reason, count]) => `${grouped(count)} ${reason}`).join(", ")}), dropping ${grouped(tally.droppedWithEnd)} commands with them as the protocol says — a reconnect slower than the grace window`;
}

function closesSentence(tally: CommandTally): string {
  const closes = Object.entries(tally.unexpectedCloses);
  if (closes.length === 0) return "";
  return ` Sockets the gateway closed on its own: ${closes.map(([what, count]) => `${grouped(count)} × ${what}`).join(", ")}.`;
}

function settleSentence(idle: IdleFigures): string {
  return `${grouped(resident(idle.active))} session objects were in memory right after the last one came up; ${idle.settleSeconds.toFixed(0)} s later ${grouped(idle.residentHibernated)} were — workerd had hibernated the rest (their sockets stay open; an evicted object closes its SQLite database, which is how they are counted here).`;
}
