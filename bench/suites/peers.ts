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
 */
import { barPanels, type Chart } from "../harness/charts.ts";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { clientToken } from "../../tools/gateway.ts";
import {
  bringUp,
  closeSession,
  every,
  gatewayProcesses,
  localTracing,
  RuntimePool,
  runLimited,
  snapshot,
  startAll,
  startLoadGateway,
  startNodeServer,
  withTimeout,
  type LiveSession,
  type Storage,
} from "../lib/fleet.ts";
import { NodePeer, type Frame } from "../../tools/peers.ts";
import { cpuMs, describeFileLimit, groupCpuMs, raiseFileLimit } from "../../tools/procfs.ts";
import { ANSWER_SDP, CLIENT_CANDIDATE, OFFER_SDP, RUNTIME_CANDIDATE } from "../lib/signaling-samples.ts";
import { distribution, type Distribution } from "../harness/stats.ts";

export const name = "peers";
export const title = "Side by side: raw relay floor, PeerJS and the gateway";
export const order = 10;

const PATHS = ["floor", "peerjs", "gateway"] as const;
type PathName = (typeof PATHS)[number];
const PATH_LABEL: Record<PathName, string> = { floor: "floor (raw Node relay)", peerjs: "PeerJS server", gateway: "gateway" };
/** ICE round trips after each SDP round trip, as in a connect with a few trickled candidates. */
const ICE_PER_EXCHANGE = 4;
/** One round trip that takes longer than this counts as failed (bounded run). */
const ROUND_TRIP_TIMEOUT_MS = 30_000;

const TARGETS = { peerP50At1: 1.2, peerP99At1: 1.2, floorP50At100: 2, peerP50At100: 2, throughputAt100: 0.5 };

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

/** One session's two ends over some relay: each call sends one message and resolves when the answer is back. */
interface Pair {
  sdp(): Promise<void>;
  ice(): Promise<void>;
  close(): void;
}

/** Resolves the pending round trip of a pair when its answer arrives; rejects it after a timeout. */
class Waiter {
  #pending: { resolve: () => void; timer: NodeJS.Timeout } | undefined;

  wait(send: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending = undefined;
        reject(new Error(`no answer within ${ROUND_TRIP_TIMEOUT_MS} ms`));
      }, ROUND_TRIP_TIMEOUT_MS);
      this.#pending = { resolve, timer };
      send();
    });
  }

  done(): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    clearTimeout(pending.timer);
    pending.resolve();
  }
}

// ── Floor ───────────────────────────────────────────────────────────────────────────────────────────────────────

/** The gateway's frames, relayed untouched by the floor: the very bytes the gateway's sockets carry. */
const offerFrame = (generation: number) => JSON.stringify({ type: "offer", generation, sdp: OFFER_SDP });
const answerFrame = (generation: number) => JSON.stringify({ type: "answer", generation, sdp: ANSWER_SDP });
const clientIceFrame = (generation: number) => JSON.stringify({ type: "ice", generation, candidate: CLIENT_CANDIDATE });
const runtimeIceFrame = (generation: number) => JSON.stringify({ type: "ice", generation, candidate: RUNTIME_CANDIDATE });

async function floorPair(port: number, id: string): Promise<Pair> {
  const [client, peer] = await Promise.all([
    NodePeer.open(`ws://127.0.0.1:${port}/client/${id}`),
    NodePeer.open(`ws://127.0.0.1:${port}/peer/${id}`),
  ]);
  peer.onFrame = (frame) => {
    const generation = frame.generation as number;
    peer.send(frame.type === "offer" ? answerFrame(generation) : runtimeIceFrame(generation));
    return true;
  };
  const waiter = new Waiter();
  client.onFrame = () => {
    waiter.done();
    return true;
  };
  let generation = 1;
  return {
    sdp: () => waiter.wait(() => client.send(offerFrame(++generation))),
    ice: () => waiter.wait(() => client.send(clientIceFrame(generation))),
    close: () => {
      client.ws.terminate();
      peer.ws.terminate();
    },
  };
}

// ── PeerJS ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** A PeerJS client's socket: connected once the server says OPEN; heartbeats as the PeerJS client sends them. */
async function peerjsClient(port: number, id: string): Promise<NodePeer> {
  const peer = await NodePeer.open(`ws://127.0.0.1:${port}/peerjs?key=peerjs&id=${id}&token=${id}t`);
  await peer.next("OPEN", 30_000);
  const heartbeat = setInterval(() => peer.send({ type: "HEARTBEAT" }), 5000);
  peer.ws.on("close", () => clearInterval(heartbeat));
  return peer;
}

/** Two PeerJS clients, as PeerJS's own client shapes its messages: OFFER/ANSWER with an SDP, CANDIDATE with one. */
async function peerjsPair(port: number, id: string): Promise<Pair> {
  const [caller, callee] = await Promise.all([peerjsClient(port, `${id}a`), peerjsClient(port, `${id}b`)]);
  const connectionId = `mc_${id}`;
  callee.onFrame = (frame: Frame) => {
    if (frame.type === "OFFER") {
      callee.send({ type: "ANSWER", dst: `${id}a`, payload: { sdp: { type: "answer", sdp: ANSWER_SDP }, type: "media", connectionId } });
    } else if (frame.type === "CANDIDATE") {
      const { candidate, sdp_mid, sdp_mline_index } = RUNTIME_CANDIDATE;
      callee.send({
        type: "CANDIDATE",
        dst: `${id}a`,
        payload: { candidate: { candidate, sdpMid: sdp_mid, sdpMLineIndex: sdp_mline_index }, type: "media", connectionId },
      });
    }
    return true;
  };
  const waiter = new Waiter();
  caller.onFrame = (frame) => {
    if (frame.type === "ANSWER" || frame.type === "CANDIDATE") waiter.done();
    return true;
  };
  const { candidate, sdp_mid, sdp_mline_index } = CLIENT_CANDIDATE;
  const offer = JSON.stringify({
    type: "OFFER",
    dst: `${id}b`,
    payload: { sdp: { type: "offer", sdp: OFFER_SDP }, type: "media", connectionId, metadata: null },
  });
  const ice = JSON.stringify({
    type: "CANDIDATE",
    dst: `${id}b`,
    payload: { candidate: { candidate, sdpMid: sdp_mid, sdpMLineIndex: sdp_mline_index }, type: "media", connectionId },
  });
  return {
    sdp: () => waiter.wait(() => caller.send(offer)),
    ice: () => waiter.wait(() => caller.send(ice)),
    close: () => {
      caller.ws.terminate();
      callee.ws.terminate();
    },
  };
}

// ── The gateway ─────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A live session as a pair: the client sends a new offer generation (the runtime answers it) or a candidate of the
 * current one (the runtime answers with one of its own), through the session's object both ways.
 */
function gatewayPair(session: LiveSession): Pair {
  const { client, runtimePeer } = session;
  runtimePeer.onFrame = (frame) => {
    const generation = frame.generation as number;
    if (frame.type === "offer") runtimePeer.send(answerFrame(generation));
    else if (frame.type === "ice") runtimePeer.send(runtimeIceFrame(generation));
    return true;
  };
  const waiter = new Waiter();
  client.onFrame = (frame) => {
    if (frame.type === "answer" || frame.type === "ice") waiter.done();
    return true; // status, ice_servers…: not part of the measurement
  };
  return {
    sdp: () => waiter.wait(() => client.send(offerFrame(++session.generation))),
    ice: () => waiter.wait(() => client.send(clientIceFrame(session.generation))),
    close: () => closeSession(session),
  };
}

/** Opens `count` pairs, 100 at a time (a burst of thousands of connects would overflow the listen backlog). */
async function openPairs(count: number, open: (index: number) => Promise<Pair>): Promise<Pair[]> {
  const pairs: Pair[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, j) => open(i + j)));
    pairs.push(...(await withTimeout(batch, 60_000, `opening pairs ${i}–${i + 99}`)));
  }
  return pairs;
}

// ── Measurement ─────────────────────────────────────────────────────────────────────────────────────────────────

interface CpuMeter {
  total(): number;
  proxy?(): number;
}

/** One timed stretch of one path: its round trips and what it cost; stretches of a path are merged by `combine`. */
interface Stretch {
  sdp: number[];
  ice: number[];
  failed: number;
  seconds: number;
  cpuUs: number;
  proxyCpuUs?: number;
}

/** A path's stretches as one row: latencies from all their round trips; rates over their summed time. */
function combine(path: PathName, sessions: number, stretches: Stretch[]): PathFigures {
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

async function measure(pairs: Pair[], exchanges: number, cpu: CpuMeter, deadline: number): Promise<Stretch> {
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

interface Settings {
  levels: number[];
  /** Exchanges (1 SDP + 4 ICE round trips) per session at each level. */
  exchanges: (sessions: number) => number;
}

/**
 * How many rounds the paths take turns in, per level: the most at 1 session, where a round trip takes well under a
 * millisecond and drift matters most; at 1,000 a single stretch per path (each takes seconds).
 */
const roundsAt = (sessions: number) => (sessions === 1 ? 10 : sessions <= 100 ? 5 : 1);

/** `items` rotated left by `by`. */
function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

const FULL: Settings = { levels: [1, 100, 1000], exchanges: (n) => (n === 1 ? 100 : n <= 100 ? 10 : 2) };
/** Quick: no 1,000-session level (bringing 1,000 gateway sessions up alone takes ~15 s here). */
const QUICK: Settings = { levels: [1, 100], exchanges: (n) => (n === 1 ? 20 : 2) };

export interface PeersFigures {
  storage: Storage;
  levels: number[];
  rows: PathFigures[];
  setup: { sessions: number; seconds: number }[];
  fileLimit: { before: number; after: number };
}

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

// ── Targets and report ──────────────────────────────────────────────────────────────────────────────────────────

function find(figures: PeersFigures, path: PathName, sessions: number): PathFigures {
  return figures.rows.find((row) => row.path === path && row.sessions === sessions)!;
}

interface Verdict {
  passed: boolean;
  checks: { what: string; ok: boolean }[];
}

function meetsTargets(figures: PeersFigures): Verdict {
  const checks: Verdict["checks"] = [];
  const at = (sessions: number) =>
    figures.levels.includes(sessions)
      ? { floor: find(figures, "floor", sessions), peer: find(figures, "peerjs", sessions), ours: find(figures, "gateway", sessions) }
      : undefined;
  const one = at(1);
  if (one) {
    checks.push({ what: `1 session: p50 ≤ ${TARGETS.peerP50At1}× PeerJS`, ok: one.ours.all.p50 <= TARGETS.peerP50At1 * one.peer.all.p50 });
    checks.push({ what: `1 session: p99 ≤ ${TARGETS.peerP99At1}× PeerJS`, ok: one.ours.all.p99 <= TARGETS.peerP99At1 * one.peer.all.p99 });
  }
  const hundred = at(100);
  if (hundred) {
    checks.push({
      what: `100 sessions: p50 ≤ ${TARGETS.floorP50At100}× floor`,
      ok: hundred.ours.all.p50 <= TARGETS.floorP50At100 * hundred.floor.all.p50,
    });
    checks.push({
      what: `100 sessions: p50 ≤ ${TARGETS.peerP50At100}× PeerJS`,
      ok: hundred.ours.all.p50 <= TARGETS.peerP50At100 * hundred.peer.all.p50,
    });
    checks.push({
      what: `100 sessions: throughput ≥ ${TARGETS.throughputAt100}× floor`,
      ok: hundred.ours.messagesPerSecond >= TARGETS.throughputAt100 * hundred.floor.messagesPerSecond,
    });
  }
  const noFailures = figures.rows.every((row) => row.failed === 0);
  checks.push({ what: "no round trip failed", ok: noFailures });
  return { passed: checks.length > 1 && checks.every((check) => check.ok), checks };
}

const ms = (value: number) =>
  Number.isFinite(value) ? (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)) : "n/a";
const times = (ours: number, other: number) => (Number.isFinite(ours / other) ? `${(ours / other).toFixed(2)}×` : "n/a");
const grouped = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a");

function markdown(figures: PeersFigures, verdict: Verdict, quick: boolean): string {
  const lines = [
    "Targets (issue 8; ratios in the same run): at 1 session the gateway's p50 and p99 within 1.2× of PeerJS; at 100 sessions p50 ≤ 2× the floor and ≤ 2× PeerJS, throughput ≥ 0.5× the floor.",
    "",
    `Measured path, ours: Node client ─ws→ workerd (Miniflare's entry → the gateway Worker) → SessionRelay Durable Object (validate, store the session's negotiation in SQLite, forward) ─ws→ Node runtime, and back the same way; \`wrangler dev\` with \`X_LOCAL_OBSERVABILITY=${localTracing()}\`, the clients connected straight to the workerd that runs the Worker (wrangler's dev proxy, a second workerd in front of it that exists only under \`wrangler dev\`, is bypassed: a deployed Worker's clients have no such hop; its CPU is still counted, in brackets), the objects' SQLite on ${figures.storage === "tmpfs" ? "tmpfs (`/dev/shm`: no fsync per commit — the relay suite shows the same path with state on disk)" : "disk"}. The peer: a PeerJS server 1.0 (npm \`peer\`) in one Node process, two PeerJS clients per session (OFFER/ANSWER/CANDIDATE messages as PeerJS's client shapes them). The floor: a raw WebSocket relay in one Node process (forwards bytes; no parsing, auth or storage). The same texts everywhere: a ${OFFER_SDP.length.toLocaleString("en-US")}-byte SDP offer answered by a ${ANSWER_SDP.length.toLocaleString("en-US")}-byte answer, then ${ICE_PER_EXCHANGE} ICE candidates (~${JSON.stringify(CLIENT_CANDIDATE).length} bytes) each answered by one; each session runs these exchanges in a closed loop, all sessions at once. At 1 and 100 sessions the three paths take turns, in ${roundsAt(1)} and ${roundsAt(100)} rounds, each round in another order, and each row merges its rounds (a machine that drifts then weighs on all three alike); at 1,000 they run one after another. Latency = round trip at the client (two relayed messages); msg/s counts relayed messages; server CPU = user + system time of the server's processes from /proc (for the gateway both workerd processes — the proxy's share in brackets — not wrangler's CLI) per relayed message. Clients, servers and runtimes share this machine's cores.`,
    "",
    "| sessions | path | round trips | p50 ms | p90 ms | p99 ms | max ms | SDP p50 | ICE p50 | msg/s | server CPU µs/msg |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const level of figures.levels) {
    for (const path of PATHS) {
      const row = find(figures, path, level);
      const cpu =
        row.proxyCpuUsPerMessage !== undefined
          ? `${row.cpuUsPerMessage.toFixed(0)} (${row.proxyCpuUsPerMessage.toFixed(0)})`
          : row.cpuUsPerMessage.toFixed(0);
      const failed = row.failed > 0 ? ` (${row.failed} failed)` : "";
      lines.push(
        `| ${grouped(level)} | ${PATH_LABEL[path]} | ${grouped(row.all.count)}${failed} | ${ms(row.all.p50)} | ${ms(row.all.p90)} | ${ms(row.all.p99)} | ${ms(row.all.max)} | ${ms(row.sdp.p50)} | ${ms(row.ice.p50)} | ${grouped(row.messagesPerSecond)} | ${cpu} |`,
      );
    }
    const floor = find(figures, "floor", level);
    const peer = find(figures, "peerjs", level);
    const ours = find(figures, "gateway", level);
    for (const [label, other] of [
      ["floor", floor],
      ["PeerJS", peer],
    ] as const) {
      lines.push(
        `| ${grouped(level)} | **gateway ÷ ${label}** | | **${times(ours.all.p50, other.all.p50)}** | ${times(ours.all.p90, other.all.p90)} | **${times(ours.all.p99, other.all.p99)}** | ${times(ours.all.max, other.all.max)} | ${times(ours.sdp.p50, other.sdp.p50)} | ${times(ours.ice.p50, other.ice.p50)} | **${times(ours.messagesPerSecond, other.messagesPerSecond)}** | ${times(ours.cpuUsPerMessage, other.cpuUsPerMessage)} |`,
      );
    }
  }
  lines.push("", "| target | result |", "|---|---|", ...verdict.checks.map((check) => `| ${check.what} | ${check.ok ? "pass" : "**FAIL**"} |`));
  const setup = figures.setup.reduce((sum, step) => ({ sessions: sum.sessions + step.sessions, seconds: sum.seconds + step.seconds }), {
    sessions: 0,
    seconds: 0,
  });
  lines.push(
    "",
    `Gateway sessions were brought to ACTIVE before measuring (${grouped(setup.sessions)} sessions in ${setup.seconds.toFixed(1)} s, 64 at a time) and reused from level to level; account limits raised for the bench (\`LIMIT_CONCURRENT_SESSIONS\`, \`LIMIT_SESSION_CREATIONS_PER_MINUTE\`, \`LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE\` = 100,000). Open-files limit (\`ulimit -n\`): ${describeFileLimit(figures.fileLimit)}.${quick ? " Quick run: 1 and 100 sessions only, 20 exchanges at 1 session and 2 at 100: rough tails." : ""}`,
    "",
    "![Signaling round trip: floor, PeerJS and the gateway](docs/benchmarks-peers.svg)",
  );
  return lines.join("\n");
}

function chart(figures: PeersFigures): Chart {
  const series = (pick: (row: PathFigures) => number) =>
    PATHS.map((path) => ({ name: PATH_LABEL[path], values: figures.levels.map((level) => pick(find(figures, path, level))) }));
  return {
    file: "benchmarks-peers.svg",
    svg: barPanels({
      title: "Signaling relay: SDP and ICE round trips, same machine, same run",
      groups: figures.levels.map((level) => grouped(level)),
      groupLabel: "concurrent sessions",
      panels: [
        { title: "p50 round trip", unit: "ms", log: true, series: series((row) => row.all.p50) },
        { title: "p99 round trip", unit: "ms", log: true, series: series((row) => row.all.p99) },
        { title: "throughput", unit: "relayed messages / s", series: series((row) => row.messagesPerSecond) },
        { title: "server CPU per message", unit: "µs", series: series((row) => row.cpuUsPerMessage) },
      ],
      note: `state on ${figures.storage}; gateway under wrangler dev (workerd), tracing off; see BENCHMARKS.md for the path`,
    }),
  };
}
