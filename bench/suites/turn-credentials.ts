/**
 * Cost of issuing one TURN credential in workerd: iceServersFor() with the coturn provider (what `ice_servers`,
 * `POST /v1/turn-credentials` and the session sockets run) next to the floor, one bare HMAC-SHA1 with an imported
 * key. Timed from outside (bench/harness/request-timing.ts); the two modes alternate.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startDevServer } from "../../scripts/lib/dev-server.ts";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import { microsecondsPerOp, timeRequest } from "../harness/request-timing.ts";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { fixed, grouped, median, quantile } from "../harness/stats.ts";

export const name = "turn-credentials";
export const title = "TURN credential issuance in workerd";

const BENCH_CONFIG = path.join(PROJECT_ROOT, "bench", "workers", "turn-issue", "wrangler.toml");
const MODES = ["ours", "floor"] as const;
type Mode = (typeof MODES)[number];

function microsecondsPerIssue(base: string, mode: Mode, n: number): Promise<number> {
  return microsecondsPerOp((count) => `${base}/issue?mode=${mode}&n=${count}`, n);
}

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const settings = ctx.quick ? { n: 2_000, repetitions: 7 } : { n: 10_000, repetitions: 15 };
  const stateDir = await mkdtemp(path.join(tmpdir(), "bench-turn-"));
  const output: string[] = [];
  ctx.progress("starting the bench Worker under wrangler dev …");
  try {
    const server = await startDevServer({ configPath: BENCH_CONFIG, stateDir, onLine: (line) => output.push(line) }).catch((error: Error) => {
      throw new Error(`${error.message}\n${output.slice(-40).join("\n")}`);
    });
    try {
      for (const mode of MODES) for (let i = 0; i < 3; i++) await timeRequest(`${server.url}/issue?mode=${mode}&n=500`);
      const samples: Record<Mode, number[]> = { ours: [], floor: [] };
      const ratios: number[] = [];
      for (let rep = 0; rep < settings.repetitions; rep++) {
        const order = rep % 2 === 0 ? MODES : ([...MODES].reverse() as Mode[]);
        const sample = {} as Record<Mode, number>;
        for (const mode of order) {
          sample[mode] = await microsecondsPerIssue(server.url, mode, settings.n);
          samples[mode].push(sample[mode]);
        }
        ratios.push(sample.ours / sample.floor);
        ctx.progress(`repetition ${rep + 1}/${settings.repetitions}: ours ${fixed(sample.ours)} µs, floor ${fixed(sample.floor)} µs`);
      }
      const figures = {
        settings,
        oursUs: median(samples.ours),
        floorUs: median(samples.floor),
        oursIqrUs: [quantile(samples.ours, 0.25), quantile(samples.ours, 0.75)],
        floorIqrUs: [quantile(samples.floor, 0.25), quantile(samples.floor, 0.75)],
        ratio: median(ratios),
      };
      const range = ([low, high]: number[]) => `${fixed(low!)}–${fixed(high!)}`;
      const markdown = [
        "What one TURN credential costs to issue at the edge: `iceServersFor()` (src/ice-servers.ts → src/turn/) " +
          "with the coturn provider (REST-API secret mode, two TURN hosts plus STUN: settings read, expiry capped by " +
          "the token, `<expiry>:<session>` username, HMAC-SHA1, the RTCIceServer list built) next to the floor, one " +
          'bare `crypto.subtle.sign("HMAC")` with an already imported SHA-1 key.',
        [
          "| | µs per credential (IQR) | credentials/s (one isolate) |",
          "|---|---|---|",
          `| ours | ${fixed(figures.oursUs)} (${range(figures.oursIqrUs)}) | ${grouped(1e6 / figures.oursUs)} |`,
          `| floor (bare HMAC-SHA1) | ${fixed(figures.floorUs)} (${range(figures.floorIqrUs)}) | ${grouped(1e6 / figures.floorUs)} |`,
          `| ours ÷ floor | ${fixed(figures.ratio, 2)}× | |`,
        ].join("\n"),
        `Method: bench Worker bench/workers/turn-issue under \`wrangler dev\`; N = ${grouped(settings.n)} issues per ` +
          `timed request minus the N = 0 requests around it; ${settings.repetitions} repetitions with the modes ` +
          "alternating; medians, and the median of per-repetition ratios. The Cloudflare Realtime TURN provider is " +
          "one HTTPS call to Cloudflare per credential instead, so its cost is that call's latency (not measurable " +
          "offline here).",
      ].join("\n\n");
      return { figures, markdown };
    } finally {
      await server.stop();
    }
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}
