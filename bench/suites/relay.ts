/**
 * Relay round trip, client → session Durable Object → runtime → back, with 1 KB messages, side by side with the
 * floor (a raw WebSocket relay in one Node process), at 1 and 100 concurrent sessions; plus pipelined command
 * throughput (commands persisted until the runtime acknowledges them), with a count of lost commands.
 *
 * Measured path (ours): Node client ─ws→ workerd (`wrangler dev`, local tracing off) Worker → SessionRelay DO
 * (validate, store in SQLite until the runtime acknowledges, forward) ─ws→ Node runtime, which answers each command
 * with a model message ─ws→ DO (validate, forward, keep in memory until the client acknowledges: the runtime keeps
 * it until then too) ─ws→ client.
 */
import { existsSync } from "node:fs";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { clientToken, workerdPids, type TestGateway } from "../../tools/gateway.ts";
import { bringUp, RuntimePool, runLimited, startAll, startLoadGateway, startNodeServer, type NodeServer, type Storage } from "../lib/fleet.ts";
import { startFloor as startBareRelayFloor } from "../lib/load-floor.ts";
import { NodePeer, type Frame } from "../../tools/peers.ts";
import { groupCpuMs, totalCpuMs } from "../../tools/procfs.ts";
import { summarize, type LatencySummary } from "../harness/stats.ts";

const PAYLOAD = "x".repeat(1024);

export interface RelayFigures {
  pairs: number;
  floor: LatencySummary;
  /** A bare hibernating relay Durable Object in the same workerd setup: what any DO relay costs here. */
  bareDo: LatencySummary;
  /** The same bare relay storing one row per frame: what one storage write per message costs here. */
  bareDoWrites: LatencySummary;
  ours: LatencySummary;
}

export interface CommandFigures {
  sessions: number;
  commands: number;
  perSecond: number;
  lost: number;
  outOfOrder: number;
}

export interface RelayResults {
  /** Where the Durable Objects' SQLite lives: the VM's disk (as `wrangler dev` runs by default) or tmpfs. */
  storage: Storage;
  relay: RelayFigures[];
  commands: CommandFigures[];
}

interface Pair {
  /** Sends one 1 KB message and resolves when its echo is back. */
  roundTrip(): Promise<void>;
}

async function measure(pairs: Pair[], perPair: number, cpu: () => Promise<number>): Promise<LatencySummary> {
  for (const pair of pairs.slice(0, Math.min(pairs.length, 10))) await pair.roundTrip(); // warm-up
  const samples: number[] = [];
  const cpuBefore = await cpu();
  const started = performance.now();
  await Promise.all(
    pairs.map(async (pair) => {
      for (let i = 0; i < perPair; i++) {
        const t0 = performance.now();
        await pair.roundTrip();
        samples.push(performance.now() - t0);
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  const cpuMs = (await cpu()) - cpuBefore;
  return summarize(samples, elapsedMs, cpuMs);
}

// ── Floor: raw relay ───────────────────────────────────────────────────────────────────────────────────────────

function startFloor(): Promise<NodeServer> {
  return startNodeServer("bench/floor/ws-relay.ts");
}

/** Pairs over a relay that forwards frames untouched; `urlOf` names each end's WebSocket URL. */
async function rawPairs(urlOf: (role: "client" | "peer", index: number) => string, count: number): Promise<{ pairs: Pair[]; close: () => void }> {
  const sockets: NodePeer[] = [];
  const pairs: Pair[] = [];
  // Opened 50 pairs at a time (one by one, setting up 100 pairs took seconds); both ends are open before any send.
  const opened: [NodePeer, NodePeer][] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) =>
      Promise.all([NodePeer.open(urlOf("client", i + j)), NodePeer.open(urlOf("peer", i + j))]),
    );
    opened.push(...(await Promise.all(batch)));
  }
  for (const [client, peer] of opened) {
    sockets.push(client, peer);
    peer.onFrame = (frame) => {
      peer.send(frame); // echo
      return true;
    };
    let pending: (() => void) | undefined;
    client.onFrame = () => {
      pending?.();
      return true;
    };
    let seq = 0;
    pairs.push({
      roundTrip: () =>
        new Promise<void>((resolve) => {
          pending = resolve;
          client.send({ type: "command", seq: ++seq, command: { type: "echo", data: { payload: PAYLOAD } } });
        }),
    });
  }
  return {
    pairs,
    close: () => {
      for (const socket of sockets) socket.close();
    },
  };
}

// ── Ours: through the gateway ──────────────────────────────────────────────────────────────────────────────────

interface GatewaySession {
  client: NodePeer;
  runtimePeer: NodePeer;
  nextSeq: number;
  /** The last model message seq the runtime sent: numbering goes on across the phases of the run. */
  messageSeq: number;
}

/**
 * Wires a session's runtime to answer every command with a model message, acknowledging commands in batches.
 * Its messages go through the session's outbox (kept until `message_ack`, resent on request).
 */
function echoingRuntime(session: GatewaySession, onCommand?: (seq: number) => void): void {
  session.runtimePeer.onFrame = (frame: Frame) => {
    if (frame.type !== "command") return true;
    const seq = frame.seq as number;
    onCommand?.(seq);
    session.runtimePeer.send({ type: "message", seq: ++session.messageSeq, scope: "application", data: (frame.command as { data: unknown }).data });
    if (seq % 16 === 0) session.runtimePeer.send({ type: "command_ack", seq });
    return true;
  };
}

/** `count` sessions brought to ACTIVE, up to 32 at a time (bench/lib/fleet.ts), on runtimes with as many slots. */
async function gatewaySessions(gateway: TestGateway, count: number): Promise<{ sessions: GatewaySession[]; pool: RuntimePool }> {
  const jwt = await clientToken(gateway);
  const pool = await RuntimePool.start(gateway, `bench-${count}-${Date.now()}`, count);
  const sessions: GatewaySession[] = [];
  const setup = await runLimited(count, 32, async () => {
    const { client, runtimePeer } = await bringUp(gateway.url, jwt, pool, 60_000);
    sessions.push({ client, runtimePeer, nextSeq: 1, messageSeq: 0 });
  });
  if (setup.failed > 0) throw new Error(`${setup.failed} of ${count} sessions did not come up: ${setup.errors.join("; ")}`);
  return { sessions, pool };
}

function gatewayPair(session: GatewaySession): Pair {
  echoingRuntime(session);
  let pending: (() => void) | undefined;
  session.client.onFrame = (frame) => {
    if (frame.type === "message") {
      const seq = frame.seq as number;
      if (seq % 16 === 0) session.client.send({ type: "ack", message_seq: seq });
      pending?.();
    }
    return true;
  };
  return {
    roundTrip: () =>
      new Promise<void>((resolve) => {
        pending = resolve;
        session.client.send({ type: "command", seq: session.nextSeq++, command: { type: "echo", data: { payload: PAYLOAD } } });
      }),
  };
}

/** Pipelined commands: sent back to back, counted when the runtime has acknowledged the last one. */
async function pipelinedCommands(sessions: GatewaySession[], perSession: number): Promise<CommandFigures> {
  let lost = 0;
  let outOfOrder = 0;
  const started = performance.now();
  await Promise.all(
    sessions.map(async (session) => {
      const first = session.nextSeq;
      const last = first + perSession - 1;
      let expected = first;
      echoingRuntime(session, (seq) => {
        if (seq !== expected) outOfOrder++;
        expected = Math.max(expected, seq + 1);
      });
      const done = new Promise<void>((resolve) => {
        session.client.onFrame = (frame) => {
          if (frame.type === "command_status" && frame.state === "acknowledged" && frame.seq === last) resolve();
          if (frame.type === "message" && (frame.seq as number) % 16 === 0) session.client.send({ type: "ack", message_seq: frame.seq });
          return true;
        };
      });
      for (let seq = first; seq <= last; seq++) {
        session.client.send({ type: "command", seq, command: { type: "echo", data: { n: seq } } });
      }
      session.nextSeq = last + 1;
      // The runtime acknowledges every 16th; make sure the last one is acknowledged too.
      const flush = setInterval(() => session.runtimePeer.send({ type: "command_ack", seq: expected - 1 }), 50);
      await done;
      clearInterval(flush);
      lost += last + 1 - expected;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const commands = sessions.length * perSession;
  return { sessions: sessions.length, commands, perSecond: commands / seconds, lost, outOfOrder };
}

export const name = "relay";
export const title = "Relay round trip and command throughput";
export const order = 30;

const TARGETS = { p50At1: 1.3, p99At1: 1.5, p50At100: 2, throughputAt100: 0.5, cpuUs: 60, commandsOne: 5000, commandsAcross: 15_000 };

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  // Quick: state on tmpfs only (the disk run doubles the time; it shows what the VM's fsync costs, not our code).
  const storages: Storage[] = !existsSync("/dev/shm") ? ["disk"] : ctx.quick ? ["tmpfs"] : ["disk", "tmpfs"];
  const runs: RelayResults[] = [];
  for (const storage of storages) runs.push(await measureRelay(ctx, storage));
  const verdicts = runs.map(meetsTargets);
  return {
    figures: runs,
    markdown: [TARGET_LINE, "", PATH_LINE, "", ...runs.map((results, i) => relayMarkdown(results, verdicts[i]!))].join("\n"),
    passed: verdicts.every(Boolean),
  };
}

function meetsTargets(results: RelayResults): boolean {
  const [one, hundred] = results.relay;
  const [commandsOne, commandsAcross] = results.commands;
  return (
    one!.ours.p50 <= TARGETS.p50At1 * one!.floor.p50 &&
    one!.ours.p99 <= TARGETS.p99At1 * one!.floor.p99 &&
    hundred!.ours.p50 <= TARGETS.p50At100 * hundred!.floor.p50 &&
    hundred!.ours.throughput >= TARGETS.throughputAt100 * hundred!.floor.throughput &&
    results.relay.every((row) => row.ours.cpuUsPerMessage <= TARGETS.cpuUs) &&
    commandsOne!.perSecond >= TARGETS.commandsOne &&
    commandsAcross!.perSecond >= TARGETS.commandsAcross &&
    results.commands.every((row) => row.lost === 0 && row.outOfOrder === 0)
  );
}

async function measureRelay(ctx: SuiteContext, storage: Storage): Promise<RelayResults> {
  const { quick } = ctx;
  const progress = (line: string) => ctx.progress(`[state on ${storage}] ${line}`);
  const concurrency = [1, 100];
  // Sized to keep a full run (disk and tmpfs) near 3 minutes: on disk every stored frame pays an fsync.
  const perPair = (pairs: number) => (pairs === 1 ? (quick ? 150 : 2000) : quick ? 10 : 40);
  const results: RelayResults = { storage, relay: [], commands: [] };

  const [floor, bare, gateway] = await startAll(startFloor(), startBareRelay(storage), startLoadGateway(storage));
  try {
    const cpuOf = (pids: number[]) => async () => totalCpuMs(pids);
    const gatewayCpu = cpuOf(workerdPids(gateway));
    const bareCpu = cpuOf(workerdPids(bare));
    const bareUrl = bare.url.replace(/^http/, "ws");
    for (const pairs of concurrency) {
      const raw = async (name: string, urlOf: Parameters<typeof rawPairs>[0], cpu: () => Promise<number>) => {
        progress(`relay: ${pairs} session(s), ${name}…`);
        const relay = await rawPairs(urlOf, pairs);
        const stats = await measure(relay.pairs, perPair(pairs), cpu);
        relay.close();
        return stats;
      };
      const floorStats = await raw(
        "floor",
        (role, i) => `ws://127.0.0.1:${floor.port}/${role}/${i}`,
        () => Promise.resolve(groupCpuMs(floor.pid)),
      );
      const bareDo = await raw("bare relay DO", (role, i) => `${bareUrl}/pair/${pairs}-${i}/${role}`, bareCpu);
      const bareDoWrites = await raw("bare relay DO + 1 write", (role, i) => `${bareUrl}/pair/w${pairs}-${i}/${role}?writes=1`, bareCpu);
      progress(`relay: ${pairs} session(s), gateway (setting up ${pairs} sessions)…`);
      const { sessions, pool } = await gatewaySessions(gateway, pairs);
      const ours = await measure(sessions.map(gatewayPair), perPair(pairs), gatewayCpu);
      results.relay.push({ pairs, floor: floorStats, bareDo, bareDoWrites, ours });

      progress(`commands: ${pairs} session(s), pipelined…`);
      const perSession = pairs === 1 ? (quick ? 400 : 3000) : quick ? 30 : 60;
      results.commands.push(await pipelinedCommands(sessions, perSession));
      for (const session of sessions) {
        session.client.close();
        session.runtimePeer.close();
      }
      pool.close();
    }
  } finally {
    await gateway.stop();
    await bare.stop();
    await floor.stop();
  }
  return results;
}

/** The bare relay Worker (bench/workers/bare-relay) under `wrangler dev`, as the load suite's floor runs it. */
async function startBareRelay(storage: Storage): Promise<TestGateway> {
  return (await startBareRelayFloor(storage)).server;
}

const ms = (value: number) => value.toFixed(2);
const ratio = (ours: number, floor: number) => `${(ours / floor).toFixed(2)}×`;

const TARGET_LINE = `Targets (ratios to the floor in the same run): 1 session p50 ≤ ${TARGETS.p50At1}×, p99 ≤ ${TARGETS.p99At1}×; 100 sessions p50 ≤ ${TARGETS.p50At100}×, throughput ≥ ${TARGETS.throughputAt100}×; server CPU ≤ ${TARGETS.cpuUs} µs per relayed message; pipelined commands ≥ ${TARGETS.commandsOne}/s in one session and ≥ ${TARGETS.commandsAcross}/s across sessions, 0 lost.`;

const PATH_LINE = [
  "Measured path: Node client ─ws→ workerd (`wrangler dev`, `X_LOCAL_OBSERVABILITY=false`) → SessionRelay Durable Object",
  "(validate, store in SQLite until the runtime acknowledges, forward) ─ws→ Node runtime, which answers each command with a",
  "model message that comes back through the object (validate, forward; kept in memory, not stored, while the client is",
  "connected: the runtime keeps it until the client has acknowledged it). The client acknowledges every 16th message.",
  "1 KB messages, one closed loop per session. Side by side: the floor (a raw WebSocket relay in one Node",
  "process), a bare hibernating relay Durable Object in the same workerd setup (bench/workers/bare-relay), and that bare",
  "relay storing one row per frame — what any relay that persists each message pays here. The whole set runs twice: with",
  "the objects' SQLite on this VM's disk (how `wrangler dev` runs by default; every storage commit pays an fsync) and on",
  "tmpfs (the same code without the fsync; a quick run measures tmpfs only). Server CPU counts the workerd processes (a round trip relays two messages).",
  "The gateway runs with the account limits raised (`LIMIT_CONCURRENT_SESSIONS`, `LIMIT_SESSION_CREATIONS_PER_MINUTE`, `LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE` = 100,000): the defaults (5, 50, 100) refuse 100 sessions of one account.",
].join(" ");

function relayMarkdown(results: RelayResults, passed: boolean): string {
  const lines = [
    `### State on ${results.storage} — targets: ${passed ? "pass" : "**FAIL**"}`,
    "",
    "| sessions | path | p50 ms | p90 ms | p99 ms | max ms | msg/s | server CPU µs/msg |",
    "|---:|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const { pairs, floor, bareDo, bareDoWrites, ours } of results.relay) {
    const paths = [
      ["floor (Node relay)", floor],
      ["bare relay DO", bareDo],
      ["bare relay DO + 1 write/frame", bareDoWrites],
      ["gateway", ours],
    ] as const;
    for (const [name, stats] of paths) {
      lines.push(
        `| ${pairs} | ${name} | ${ms(stats.p50)} | ${ms(stats.p90)} | ${ms(stats.p99)} | ${ms(stats.max)} | ${stats.throughput.toFixed(0)} | ${stats.cpuUsPerMessage.toFixed(1)} |`,
      );
    }
    lines.push(
      `| ${pairs} | **gateway ÷ floor** | **${ratio(ours.p50, floor.p50)}** | ${ratio(ours.p90, floor.p90)} | **${ratio(ours.p99, floor.p99)}** | | **${(ours.throughput / floor.throughput).toFixed(2)}×** | ${ratio(ours.cpuUsPerMessage, floor.cpuUsPerMessage)} |`,
      `| ${pairs} | gateway ÷ bare DO + write | ${ratio(ours.p50, bareDoWrites.p50)} | ${ratio(ours.p90, bareDoWrites.p90)} | ${ratio(ours.p99, bareDoWrites.p99)} | | ${(ours.throughput / bareDoWrites.throughput).toFixed(2)}× | ${ratio(ours.cpuUsPerMessage, bareDoWrites.cpuUsPerMessage)} |`,
    );
  }
  lines.push("", "| sessions | commands (pipelined) | commands/s | lost | out of order |", "|---:|---:|---:|---:|---:|");
  for (const c of results.commands) lines.push(`| ${c.sessions} | ${c.commands} | ${c.perSecond.toFixed(0)} | ${c.lost} | ${c.outOfOrder} |`);
  lines.push("");
  return lines.join("\n");
}
