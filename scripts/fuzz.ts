/**
 * `npm run fuzz -- --frames 2000000`: the protocol fuzzers of the test suite (test/worker/fuzz-sockets.test.ts and
 * fuzz-rest.test.ts, inside workerd) at a larger scale, for nightly runs. CI runs the same tests with 100,000 frames.
 * The seed of every run is printed; `--seed` replays one.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { parseArgs } from "node:util";

const HELP = `Fuzz the gateway's sockets and REST API with generated and mutated frames (fast-check, inside workerd).

Usage: npm run fuzz -- [--frames <n>] [--seed <n>]

  --frames <n>   Frames and requests in total, split between the native signaling socket, the runtime's session
                 and control sockets and the REST API (default 2000000; CI runs 100000).
  --seed <n>     Replay a run (its seed is printed at the end of every run).
  -h, --help     Show this help.
`;

const { values } = parseArgs({
  options: { frames: { type: "string", default: "2000000" }, seed: { type: "string" }, help: { type: "boolean", short: "h" } },
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

const root = path.resolve(import.meta.dirname, "..");
const vitest = path.join(root, "node_modules", ".bin", "vitest");
const files = ["test/worker/fuzz-sockets.test.ts", "test/worker/fuzz-rest.test.ts"];
const started = Date.now();
const child = spawn(vitest, ["run", "--project", "worker", ...files], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, FUZZ_FRAMES: String(frames), ...(values.seed !== undefined && { FUZZ_SEED: values.seed }) },
});
child.on("exit", (code, signal) => {
  process.stdout.write(`\nfuzz: ${frames} frames requested, ${((Date.now() - started) / 1000).toFixed(0)} s, ${code === 0 ? "passed" : `failed (${signal ?? code})`}\n`);
  process.exit(code ?? 1);
});
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
