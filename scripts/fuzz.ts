/**
 * `npm run fuzz -- --frames 2000000`: the protocol fuzzers of the test suite (test/worker/fuzz-sockets.test.ts and
 * fuzz-rest.test.ts, inside workerd) at a larger scale, for nightly runs. CI runs the same tests with 100,000 frames.
 * With them, the session chaos test (test/worker/session-chaos.test.ts) runs `--chaos-seeds` random scripts.
 * The seed of every run is printed; `--seed` replays one. While it runs, a line every 10 s says how many frames are
 * done, the rate and the time left (from the targets' progress lines, scripts/lib/fuzz-progress.ts).
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { FuzzProgress } from "./lib/fuzz-progress.ts";

const HELP = `Fuzz the gateway's sockets and REST API with generated and mutated frames (fast-check, inside workerd).

Usage: npm run fuzz -- [--frames <n>] [--seed <n>] [--chaos-seeds <n>]

  --frames <n>   Frames and requests in total, split between the native signaling socket, the runtime's session
                 and control sockets and the REST API (default 2000000; CI runs 100000).
  --seed <n>     Replay a run (its seed is printed at the end of every run).
  --chaos-seeds <n>
                 Random scripts for the session chaos test (test/worker/session-chaos.test.ts: both sides
                 dropping, buffer overflow, restarts; default 200, CI runs 6). With --seed, replays that seed.
  -h, --help     Show this help.
`;

const { values } = parseArgs({
  options: {
    frames: { type: "string", default: "2000000" },
    seed: { type: "string" },
    "chaos-seeds": { type: "string", default: "200" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const frames = Number(values.frames);
if (!Number.isInteger(frames) || frames < 1000) {
  process.stderr.write(`--frames must be an integer of at least 1000, got ${values.frames}\n`);
  process.exit(2);
}
if (values.seed !== undefined && !/^-?\d+$/.test(values.seed)) {
  process.stderr.write(`--seed must be an integer, got ${values.seed}\n`);
  process.exit(2);
}

const chaosSeeds = Number(values["chaos-seeds"]);
if (!Number.isInteger(chaosSeeds) || chaosSeeds < 1) {
  process.stderr.write(`--chaos-seeds must be a positive integer, got ${values["chaos-seeds"]}\n`);
  process.exit(2);
}

const root = path.resolve(import.meta.dirname, "..");
const vitest = path.join(root, "node_modules", ".bin", "vitest");
const files = ["test/worker/fuzz-sockets.test.ts", "test/worker/fuzz-rest.test.ts", "test/worker/session-chaos.test.ts"];
const started = Date.now();
const child = spawn(vitest, ["run", "--project", "worker", ...files], {
  cwd: root,
  stdio: ["inherit", "pipe", "inherit"],
  env: {
    ...process.env,
    ...(process.stdout.isTTY && { FORCE_COLOR: "1" }), // vitest's colours, although its output comes through a pipe
    FUZZ_FRAMES: String(frames),
    ...(values.seed !== undefined && { FUZZ_SEED: values.seed }),
    // The chaos test prints a line per script ("chaos: run i/N ok: …"), passed through as it comes.
    CHAOS_SEEDS: String(chaosSeeds),
    ...(values.seed !== undefined && { CHAOS_SEED: values.seed }),
  },
});

// The targets' progress lines (test/worker/fuzz-kit.ts) become one line for the whole run, at most every 10 s.
const progress = new FuzzProgress(frames, started);
let lastSummary = 0;
const SUMMARY_EVERY_MS = 10_000;
process.stdout.write(`fuzz: ${frames} frames; progress every ${SUMMARY_EVERY_MS / 1000} s\n`);
/** vitest's "stdout | <file> > <test>" line, held back until we know whether a progress line follows it. */
let held: string | undefined;
// biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour escapes (ESC [ … m) from the child's output.
const plain = (line: string) => line.replace(/\x1b\[[0-9;]*m/g, "");
createInterface({ input: child.stdout! }).on("line", (line) => {
  if (progress.take(plain(line))) {
    held = undefined;
    if (Date.now() - lastSummary >= SUMMARY_EVERY_MS || progress.done >= frames) {
      lastSummary = Date.now();
      process.stdout.write(`${progress.summary(lastSummary)}\n`);
    }
    return;
  }
  if (held !== undefined) process.stdout.write(`${held}\n`);
  held = /^stdout \| /.test(plain(line)) ? line : undefined;
  if (held === undefined) process.stdout.write(`${line}\n`);
});
child.on("close", (code, signal) => {
  if (held !== undefined) process.stdout.write(`${held}\n`);
  process.stdout.write(
    `\nfuzz: ${frames} frames requested, ${((Date.now() - started) / 1000).toFixed(0)} s, ${code === 0 ? "passed" : `failed (${signal ?? code})`}\n`,
  );
  process.exit(code ?? 1);
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
