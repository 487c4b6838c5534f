/**
 * CPU cost of the demo model per session: the runtime agent (`node runtime/main.ts`, its own process) serving 1, 2
 * and 4 sessions to werift clients in this process, through a real gateway (`wrangler dev`), with video flowing.
 * CPU comes from /proc/<pid>/stat (utime + stime) over a steady window: the agent (Node, werift: SRTP, RTCP, the
 * signaling sockets), its ffmpeg encoders (testsrc + drawtext + libvpx realtime, 640×360@30, 1 Mbit/s), and the
 * tethers that tie each encoder's life to the agent.
 *
 * Side by side, ffmpeg alone (no agent, RTP to an unread port) in two layouts for N sessions: one process per
 * session (what the demo model does: each session its own prompt, started and stopped with it), and one process
 * rendering the pattern once and splitting it into N drawtext + encoder chains (a shared source). A single encoder
 * shared by every session would cost what one session costs, but every session would then see the same prompt.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { ffmpegArgs } from "../../runtime/demo/encoder.ts";
import { checkFfmpeg, chooseFfmpeg } from "../../runtime/demo/ffmpeg.ts";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import { cpuMs, descendants } from "../../tools/procfs.ts";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { fixed } from "../harness/stats.ts";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { MediaClient, negotiateNative, until } from "../../tools/media-client.ts";
import { createSession, openSignal, type NodePeer } from "../../tools/peers.ts";

export const name = "demo-model";
export const title = "Demo model: CPU per session";

const SESSION_COUNTS = [1, 2, 4];
/** A quick run: one count, no ffmpeg-alone layouts (those figures depend on ffmpeg, not on our code). */
const QUICK_SESSION_COUNTS = [2];

/** Percent of one core, over the window. */
export interface AgentFigures {
  sessions: number;
  windowSeconds: number;
  agentPercent: number;
  ffmpegPercent: number;
  tethersPercent: number;
  totalPercent: number;
  perSessionPercent: number;
  /** Video packets the clients received per second, all sessions together (proof the stream flowed). */
  packetsPerSecond: number;
}

export interface StandaloneFigures {
  sessions: number;
  layout: "process per session" | "one process, split source";
  ffmpegPercent: number;
  perSessionPercent: number;
}

export interface DemoModelFigures {
  agent: AgentFigures[];
  standalone: StandaloneFigures[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU ms used by `pids` during `windowMs` (processes that exit meanwhile count as far as they got). */
async function cpuDuring(pids: number[], windowMs: number): Promise<number> {
  const read = async () => pids.map(cpuMs); // 0 for a process that is gone
  const before = await read();
  await sleep(windowMs);
  const after = await read();
  return after.reduce((sum, ms, i) => sum + Math.max(0, ms - before[i]!), 0);
}

const percent = (cpuMs: number, windowMs: number) => (100 * cpuMs) / windowMs;

// ── The agent serving N sessions ─────────────────────────────────────────────────────────────────────────────────

interface AgentProcess {
  child: ChildProcess;
  output: string[];
}

async function startAgentProcess(gateway: TestGateway, slots: number): Promise<AgentProcess> {
  const child = spawn(
    process.execPath,
    ["runtime/main.ts", "--gateway", gateway.url, "--model", "demo", "--slots", String(slots), "--log-level", "warn"],
    {
      cwd: PROJECT_ROOT,
      env: { ...process.env, REACTOR_RUNTIME_TOKEN: gateway.runtimeToken },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const output: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", (line) => output.push(line));
  await until(() => output.some((line) => line.includes("serving model demo")), `the runtime agent to register:\n${output.join("\n")}`, 60_000);
  return { child, output };
}

/** SIGTERM: the agent releases its sessions and stops its encoders; SIGKILL if it takes too long. */
async function stopAgentProcess(agent: AgentProcess): Promise<void> {
  if (agent.child.exitCode !== null || agent.child.signalCode !== null) return;
  const exited = once(agent.child, "exit");
  agent.child.kill("SIGTERM");
  const timer = setTimeout(() => agent.child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

interface ClientSession {
  signal: NodePeer;
  client: MediaClient;
}

async function openSessions(gateway: TestGateway, jwt: string, count: number): Promise<ClientSession[]> {
  const sessions: ClientSession[] = [];
  for (let i = 0; i < count; i++) {
    const sessionId = await createSession(gateway.url, jwt, "demo");
    const signal = await openSignal(gateway.url, jwt, sessionId);
    const client = new MediaClient();
    await negotiateNative(signal, client);
    sessions.push({ signal, client });
  }
  await until(() => sessions.every(({ client }) => client.packets > 30), "video on every session");
  return sessions;
}

async function closeSessions(sessions: ClientSession[]): Promise<void> {
  for (const { signal, client } of sessions) {
    signal.send({ type: "close" });
    await client.close();
    signal.close();
  }
}

async function measureAgent(agent: AgentProcess, sessions: ClientSession[], windowMs: number): Promise<AgentFigures> {
  const pid = agent.child.pid!;
  const below = descendants(pid);
  const ffmpeg = below.filter((info) => info.command === "ffmpeg").map((info) => info.pid);
  if (ffmpeg.length !== sessions.length) throw new Error(`expected ${sessions.length} encoders, found ${ffmpeg.length}`);
  const tethers = below.filter((info) => info.command !== "ffmpeg").map((info) => info.pid);
  const packetsBefore = sessions.reduce((sum, { client }) => sum + client.packets, 0);
  const [agentMs, ffmpegMs, tethersMs] = await Promise.all([cpuDuring([pid], windowMs), cpuDuring(ffmpeg, windowMs), cpuDuring(tethers, windowMs)]);
  const packets = sessions.reduce((sum, { client }) => sum + client.packets, 0) - packetsBefore;
  const total = agentMs + ffmpegMs + tethersMs;
  return {
    sessions: sessions.length,
    windowSeconds: windowMs / 1000,
    agentPercent: percent(agentMs, windowMs),
    ffmpegPercent: percent(ffmpegMs, windowMs),
    tethersPercent: percent(tethersMs, windowMs),
    totalPercent: percent(total, windowMs),
    perSessionPercent: percent(total, windowMs) / sessions.length,
    packetsPerSecond: (packets * 1000) / windowMs,
  };
}

// ── ffmpeg alone ─────────────────────────────────────────────────────────────────────────────────────────────────

/** ffmpeg arguments for one process rendering the pattern once and encoding it N times, each with its own text. */
function splitArgs(single: string[], textFiles: string[], port: number): string[] {
  const input = single.indexOf("-i");
  const [source, drawAndFormat] = single[input + 1]!.split(/,(?=drawtext=)/); // testsrc=… | drawtext=…,format=yuv420p
  const encoder = single.slice(single.indexOf("-an"), single.indexOf("-f", single.indexOf("-an")));
  const n = textFiles.length;
  const filter = [
    `[0:v]split=${n}${textFiles.map((_, i) => `[s${i}]`).join("")}`,
    ...textFiles.map((file, i) => `[s${i}]${drawAndFormat!.replace(/textfile=[^:]+/, `textfile=${file}`)}[v${i}]`),
  ].join(";");
  return [
    ...single.slice(0, input + 1),
    source!, // still read with -re, so the pattern is rendered in real time
    "-filter_complex",
    filter,
    ...textFiles.flatMap((_, i) => ["-map", `[v${i}]`, ...encoder, "-f", "rtp", "-payload_type", "96", `rtp://127.0.0.1:${port}?pkt_size=1200`]),
  ];
}

async function measureStandalone(layout: StandaloneFigures["layout"], sessions: number, windowMs: number): Promise<StandaloneFigures> {
  const dir = await mkdtemp(path.join(tmpdir(), "bench-demo-"));
  const sink = createSocket("udp4"); // a port that exists, so sends never fail; nobody reads it
  await new Promise<void>((resolve) => sink.bind(0, "127.0.0.1", () => resolve()));
  sink.on("message", () => undefined);
  const port = sink.address().port;
  const children: ChildProcess[] = [];
  try {
    const files = await Promise.all(
      Array.from({ length: sessions }, async (_, i) => {
        const file = path.join(dir, `text${i}.txt`);
        await writeFile(file, `session ${i + 1}`);
        return file;
      }),
    );
    const argv =
      layout === "process per session"
        ? files.map((textFile) => ffmpegArgs({ textFile, port }))
        : [splitArgs(ffmpegArgs({ textFile: files[0]!, port }), files, port)];
    const ffmpeg = checkFfmpeg(chooseFfmpeg()); // the packaged one, as the demo model runs it
    for (const args of argv) children.push(spawn(ffmpeg, args, { stdio: ["ignore", "ignore", "inherit"] }));
    await sleep(2000); // past start-up
    if (children.some((child) => child.exitCode !== null)) throw new Error("ffmpeg exited early");
    const cpuMs = await cpuDuring(
      children.map((child) => child.pid!),
      windowMs,
    );
    const ffmpegPercent = percent(cpuMs, windowMs);
    return { sessions, layout, ffmpegPercent, perSessionPercent: ffmpegPercent / sessions };
  } finally {
    for (const child of children) child.kill("SIGKILL");
    sink.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// ── The suite ────────────────────────────────────────────────────────────────────────────────────────────────────

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const windowMs = ctx.quick ? 3000 : 12_000;
  const counts = ctx.quick ? QUICK_SESSION_COUNTS : SESSION_COUNTS;
  const figures: DemoModelFigures = { agent: [], standalone: [] };
  const gateway = await startGateway({ vars: { STUN_URLS: "" } });
  let agent: AgentProcess | undefined;
  try {
    const jwt = await clientToken(gateway);
    agent = await startAgentProcess(gateway, Math.max(...counts));
    for (const count of counts) {
      ctx.progress(`agent serving ${count} session(s)…`);
      const sessions = await openSessions(gateway, jwt, count);
      await sleep(ctx.quick ? 1000 : 2000); // steady state: encoders warm, replays done
      figures.agent.push(await measureAgent(agent, sessions, windowMs));
      await closeSessions(sessions);
      await until(() => descendants(agent!.child.pid!).every((info) => info.command !== "ffmpeg"), "the encoders to stop");
    }
  } finally {
    if (agent) await stopAgentProcess(agent);
    await gateway.stop();
  }
  for (const layout of ctx.quick ? [] : (["process per session", "one process, split source"] as const)) {
    for (const count of counts) {
      ctx.progress(`ffmpeg alone, ${layout}, ${count} session(s)…`);
      figures.standalone.push(await measureStandalone(layout, count, windowMs));
    }
  }
  return { figures, markdown: markdown(figures) };
}

function markdown(figures: DemoModelFigures): string {
  const window = figures.agent[0]?.windowSeconds ?? 0;
  const lines = [
    "CPU in % of one core, from /proc over a " +
      `${window} s window with video flowing to every session ` +
      "(640×360@30 VP8, 1 Mbit/s, `-cpu-used 8 -threads 1`). The agent runs as its own process (`node runtime/main.ts`), " +
      "the werift clients in the bench process; the gateway's CPU is not counted.",
    "",
    "| sessions | agent (Node, werift) | ffmpeg | tethers | total | **per session** | packets/s received |",
    "|---:|---:|---:|---:|---:|---:|---:|",
    ...figures.agent.map(
      (row) =>
        `| ${row.sessions} | ${fixed(row.agentPercent)} | ${fixed(row.ffmpegPercent)} | ${fixed(row.tethersPercent)} | ${fixed(row.totalPercent)} | **${fixed(row.perSessionPercent)}** | ${fixed(row.packetsPerSecond, 0)} |`,
    ),
    "",
    ...(figures.standalone.length === 0
      ? ["Quick run: 2 sessions only; ffmpeg alone in its two layouts is measured by full runs."]
      : [
          "ffmpeg alone, the two ways to lay out N encoders (a single encoder shared by all sessions would cost the 1-session figure, but every session would see the same prompt):",
          "",
          "| sessions | layout | ffmpeg | per session |",
          "|---:|---|---:|---:|",
          ...figures.standalone.map((row) => `| ${row.sessions} | ${row.layout} | ${fixed(row.ffmpegPercent)} | ${fixed(row.perSessionPercent)} |`),
        ]),
  ];
  return lines.join("\n");
}
