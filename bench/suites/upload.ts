/**
 * Upload throughput through the gateway (docs/uploads.md): `PUT /uploads/{id}?…` — signature check, the session
 * object's claim, the body streamed into R2 through the length-checking loop, the completion — side by side, in the
 * same run, with a direct R2 put of the same bytes by the same workerd (bench/workers/upload, `PUT /direct/<key>`:
 * the floor). 10 MiB and 50 MiB files; the two paths alternate, so both see the same machine load. While each file
 * streams, the resident memory of every workerd process is sampled: streaming must not grow with the file.
 */
import { existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { fixed, median } from "../harness/stats.ts";
import { clientToken, startGateway, workerdPids, type TestGateway } from "../../tools/gateway.ts";
import { registerModel } from "../../tools/peers.ts";
import { rssKiB } from "../../tools/procfs.ts";

export const name = "upload";
export const title = "File uploads: throughput and memory";

const CONFIG = path.join(PROJECT_ROOT, "bench", "workers", "upload", "wrangler.toml");
const MIB = 1024 * 1024;
const SIZES = [10 * MIB, 50 * MIB];
const QUICK_SIZES = [4 * MIB, 16 * MIB];
const PATHS = ["gateway", "direct"] as const;
type UploadPath = (typeof PATHS)[number];
const SAMPLE_EVERY_MS = 10;

export interface PathFigures {
  runs: number;
  /** Megabytes (10^6 bytes) per second, from the PUT's start to its answer. */
  medianMBps: number;
  minMBps: number;
  maxMBps: number;
  medianMs: number;
  /** Growth of the workerd processes' summed resident memory over each run's baseline (its peak), MiB: median, largest. */
  medianRssGrowthMiB: number;
  peakRssGrowthMiB: number;
}

export interface SizeFigures {
  bytes: number;
  gateway: PathFigures;
  direct: PathFigures;
  /** Gateway throughput over the direct put's: the median of each round's ratio (the two PUTs back to back). */
  ratio: number;
  /** Median time of POST /sessions/{id}/uploads (the presigned URL), not in the throughput. */
  createMs: number;
}

interface Run {
  ms: number;
  rssGrowthKiB: number;
}

/** Samples the summed RSS of `pids` until stopped; returns the largest sample. */
function sampleRss(pids: number[]): { stop(): number; baseline: number } {
  const total = () => pids.reduce((sum, pid) => sum + rssKiB(pid), 0);
  const baseline = total();
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, total())), SAMPLE_EVERY_MS);
  return {
    baseline,
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, total());
    },
  };
}

class Uploader {
  readonly #gateway: TestGateway;
  readonly #jwt: string;
  readonly #pids: number[];
  sessionId = "";
  readonly createMs: number[] = [];

  constructor(gateway: TestGateway, jwt: string) {
    this.#gateway = gateway;
    this.#jwt = jwt;
    this.#pids = workerdPids(gateway);
  }

  async newSession(): Promise<void> {
    if (this.sessionId) await this.#call("DELETE", `/sessions/${this.sessionId}`); // its files go with it
    const created = await this.#call("POST", "/sessions", { model: { name: "bench-uploads" } });
    this.sessionId = (created as { session_id: string }).session_id;
  }

  async upload(via: UploadPath, body: Uint8Array<ArrayBuffer>): Promise<Run> {
    const url = via === "gateway" ? await this.#presign(body.byteLength) : `${this.#gateway.url}/direct/${this.sessionId}-${Math.random()}`;
    const memory = sampleRss(this.#pids);
    const started = performance.now();
    const response = await fetch(url, { method: "PUT", body, headers: { "Content-Type": "image/png" } });
    const text = await response.text();
    const ms = performance.now() - started;
    const rssGrowthKiB = memory.stop() - memory.baseline;
    if (response.status !== 200) throw new Error(`PUT (${via}): HTTP ${response.status} ${text}`);
    if (via === "direct") await fetch(url, { method: "DELETE" });
    return { ms, rssGrowthKiB };
  }

  async #presign(size: number): Promise<string> {
    const started = performance.now();
    const slot = await this.#call("POST", `/sessions/${this.sessionId}/uploads`, { name: "bench.png", size, mime_type: "image/png" });
    this.createMs.push(performance.now() - started);
    return (slot as { presigned_url: string }).presigned_url;
  }

  async #call(method: string, route: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${this.#gateway.url}${route}`, {
      method,
      headers: { Authorization: `Bearer ${this.#jwt}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route}: HTTP ${response.status} ${text}`);
    return JSON.parse(text);
  }
}

function pathFigures(bytes: number, runs: Run[]): PathFigures {
  const rates = runs.map((run) => bytes / 1e6 / (run.ms / 1000));
  return {
    runs: runs.length,
    medianMBps: median(rates),
    minMBps: Math.min(...rates),
    maxMBps: Math.max(...rates),
    medianMs: median(runs.map((run) => run.ms)),
    medianRssGrowthMiB: median(runs.map((run) => run.rssGrowthKiB)) / 1024,
    peakRssGrowthMiB: Math.max(...runs.map((run) => run.rssGrowthKiB)) / 1024,
  };
}

async function measureSize(uploader: Uploader, bytes: number, reps: number, ctx: SuiteContext): Promise<SizeFigures> {
  const body = new Uint8Array(randomBytes(bytes)); // incompressible, like an image
  const runs: Record<UploadPath, Run[]> = { gateway: [], direct: [] };
  uploader.createMs.length = 0;
  await uploader.newSession();
  for (const via of PATHS) await uploader.upload(via, body); // warm-up, untimed
  for (let rep = 0; rep < reps; rep++) {
    await uploader.newSession(); // a fresh session per round: the previous one's files are deleted with it
    for (const via of rep % 2 === 0 ? PATHS : [...PATHS].reverse()) runs[via].push(await uploader.upload(via, body));
    ctx.progress(
      `${bytes / MIB} MiB, round ${rep + 1}/${reps}: gateway ${fixed(runs.gateway.at(-1)!.ms, 0)} ms, direct ${fixed(runs.direct.at(-1)!.ms, 0)} ms`,
    );
  }
  const gateway = pathFigures(bytes, runs.gateway);
  const direct = pathFigures(bytes, runs.direct);
  const ratio = median(runs.gateway.map((run, round) => runs.direct[round]!.ms / run.ms));
  return { bytes, gateway, direct, ratio, createMs: median(uploader.createMs) };
}

function markdown(sizes: SizeFigures[], storage: string, reps: number): string {
  const row = (size: SizeFigures, via: UploadPath) => {
    const f = size[via];
    return `| ${size.bytes / MIB} MiB | ${via === "gateway" ? "through the gateway" : "direct R2 put (floor)"} | ${fixed(f.medianMBps, 0)} | ${fixed(f.minMBps, 0)}–${fixed(f.maxMBps, 0)} | ${fixed(f.medianMs, 0)} | ${fixed(f.medianRssGrowthMiB, 1)} / ${fixed(f.peakRssGrowthMiB, 1)} |`;
  };
  return [
    "Throughput of `PUT /uploads/{id}` (presigned URL: signature, the session object's claim and completion, the " +
      "body streamed into R2 through the length-checking loop) next to a direct R2 put of the same bytes by the same " +
      "workerd (the floor), and how much the workerd processes' resident memory grows while a file streams.",
    [
      "| File | Path | MB/s (median) | MB/s (min–max) | ms (median) | workerd RSS growth, MiB (median / max) |",
      "|---|---|---|---|---|---|",
      ...sizes.flatMap((size) => [row(size, "gateway"), row(size, "direct")]),
    ].join("\n"),
    `${sizes
      .map(
        (size) =>
          `**${size.bytes / MIB} MiB: the gateway moves ${fixed(size.ratio * 100, 0)} % of the direct put's throughput (median of the rounds' paired ratios); ` +
          `workerd's memory grew by ${fixed(size.gateway.medianRssGrowthMiB, 1)} MiB (median; at most ${fixed(size.gateway.peakRssGrowthMiB, 1)}) ` +
          `while the ${size.bytes / MIB} MiB file streamed (direct put: ${fixed(size.direct.medianRssGrowthMiB, 1)} MiB).**`,
      )
      .join(
        " ",
      )} Creating the presigned URL (POST /sessions/{id}/uploads, not in the figures above): ${fixed(median(sizes.map((size) => size.createMs)), 1)} ms median.`,
    "Method: the bench Worker (bench/workers/upload) runs the gateway's own app under `wrangler dev` (workerd, local " +
      `R2 simulator, state on ${storage}) on loopback, plus \`PUT /direct/<key>\`, which hands the request body to ` +
      "`env.UPLOADS.put` as it is. Node sends random bytes (incompressible, like an image) with Content-Length from " +
      `memory, and times each PUT from its start to the answer. ${reps} rounds per size after one untimed warm-up of ` +
      "each path, the two paths back to back, their order alternating; each round uses a fresh session (the previous " +
      "one is deleted, and its files with it). Memory: the summed VmRSS of every workerd process, sampled every " +
      `${SAMPLE_EVERY_MS} ms during each PUT, its peak minus its value just before; the R2 simulator runs in the same ` +
      "workerd, so the direct put's growth is what storing costs by itself. The gateway's loop reads the body in " +
      "batches of at least 64 KiB into fresh buffers (V8 heap, freed by the garbage collector): memory that does not " +
      "grow with the file is the sign that nothing is buffered whole.",
  ].join("\n\n");
}

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const reps = ctx.quick ? 2 : 5;
  const storage = existsSync("/dev/shm") ? "tmpfs" : "disk";
  ctx.progress(`starting the bench Worker under wrangler dev (state on ${storage}) …`);
  const gateway = await startGateway({ configPath: CONFIG, workRoot: storage === "tmpfs" ? "/dev/shm" : undefined });
  await registerModel(gateway, "bench-uploads"); // sessions wait on it: no runtime serves it
  try {
    const uploader = new Uploader(gateway, await clientToken(gateway));
    const sizes: SizeFigures[] = [];
    for (const bytes of ctx.quick ? QUICK_SIZES : SIZES) sizes.push(await measureSize(uploader, bytes, reps, ctx));
    await uploader.newSession(); // deletes the last round's files
    return { figures: { storage, reps, sizes }, markdown: markdown(sizes, storage, reps) };
  } finally {
    await gateway.stop();
  }
}
