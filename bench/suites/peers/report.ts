/** The peers suite's verdict against its targets (ratios in the same run), its section of BENCHMARKS.md and its chart. */
import { barPanels, type Chart } from "../../harness/charts.ts";
import { grouped, ratio } from "../../harness/format.ts";
import { localTracing } from "../../lib/fleet.ts";
import { ANSWER_SDP, CLIENT_CANDIDATE, OFFER_SDP } from "../../lib/signaling-samples.ts";
import { describeFileLimit } from "../../../tools/procfs.ts";
import { ICE_PER_EXCHANGE, PATHS, roundsAt, type PathFigures, type PathName, type PeersFigures } from "./measure.ts";

const PATH_LABEL: Record<PathName, string> = { floor: "floor (raw Node relay)", peerjs: "PeerJS server", gateway: "gateway" };

const TARGETS = { peerP50At1: 1.2, peerP99At1: 1.2, floorP50At100: 2, peerP50At100: 2, throughputAt100: 0.5 };

export function find(figures: PeersFigures, path: PathName, sessions: number): PathFigures {
  return figures.rows.find((row) => row.path === path && row.sessions === sessions)!;
}

interface Verdict {
  passed: boolean;
  checks: { what: string; ok: boolean }[];
}

export function meetsTargets(figures: PeersFigures): Verdict {
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

export const ms = (value: number) =>
  Number.isFinite(value) ? (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)) : "n/a";

export function markdown(figures: PeersFigures, verdict: Verdict, quick: boolean): string {
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
        `| ${grouped(level)} | **gateway ÷ ${label}** | | **${ratio(ours.all.p50, other.all.p50)}** | ${ratio(ours.all.p90, other.all.p90)} | **${ratio(ours.all.p99, other.all.p99)}** | ${ratio(ours.all.max, other.all.max)} | ${ratio(ours.sdp.p50, other.sdp.p50)} | ${ratio(ours.ice.p50, other.ice.p50)} | **${ratio(ours.messagesPerSecond, other.messagesPerSecond)}** | ${ratio(ours.cpuUsPerMessage, other.cpuUsPerMessage)} |`,
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

export function chart(figures: PeersFigures): Chart {
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
