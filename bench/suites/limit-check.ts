/**
 * Cost of the account limit check on the session-creation path: POST /sessions on the gateway (the route takes a
 * slot from the account's AccountLimits object before creating the session) side by side with the same path whose
 * check is answered in-process (bench/workers/limit-check: the same app, ACCOUNT_LIMITS replaced by an allow-all stand-in).
 *
 * Every session is deleted right after it is created (untimed), so an account holds at most a few slots, as a real
 * one does; each account makes 40 creations per model, under the 50 a minute it may. Requests go in pairs, one per
 * path, back to back, and the cost is the median of the paired differences, so the load the machine is under (other
 * work on a shared machine) cancels out. Measured one request at a time, and with 4 workers on one account (one
 * model each), where the account's object serializes the checks.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import type { SuiteContext, SuiteResult } from "../harness/suite.ts";
import { fixed, grouped, median, quantile } from "../harness/stats.ts";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { registerModel } from "../../tools/peers.ts";

export const name = "limit-check";
export const title = "Account limit check on session creation";

const CONFIG = path.join(PROJECT_ROOT, "bench", "workers", "limit-check", "wrangler.toml");
const VARIANTS = ["with", "without"] as const;
type Variant = (typeof VARIANTS)[number];
const PREFIX: Record<Variant, string> = { with: "", without: "/unlimited" };
/** Timed creations per account and model, after one untimed warm-up: 40 in all, under the 50 per minute allowed. */
const PER_ACCOUNT = 39;
const IN_FLIGHT = 4;

interface Settings {
  /** Account pairs (one account per path) run one after the other, PER_ACCOUNT timed pairs of requests each. */
  sequentialAccounts: number;
  /** Account pairs run with IN_FLIGHT workers at once, each on its own model. */
  concurrentAccounts: number;
}

export interface VariantFigures {
  requests: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  meanMs: number;
}

export interface LoadFigures {
  with: VariantFigures;
  without: VariantFigures;
  /** Median of the paired differences (with − without, the two requests timed back to back), µs. */
  costUs: number;
  /** Interquartile range of the paired differences, µs. */
  costIqrUs: [number, number];
}

export interface LimitCheckFigures {
  storage: "tmpfs" | "disk";
  sequential: LoadFigures;
  concurrent: LoadFigures;
}

async function createSession(gateway: TestGateway, variant: Variant, jwt: string, model: string): Promise<{ ms: number; id: string }> {
  const started = performance.now();
  const response = await fetch(`${gateway.url}${PREFIX[variant]}/sessions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ model: { name: model }, client_info: { sdk_version: "bench", sdk_type: "js" } }),
  });
  const body = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`POST /sessions (${variant}): HTTP ${response.status} ${body}`);
  return { ms, id: (JSON.parse(body) as { session_id: string }).session_id };
}

async function deleteSession(gateway: TestGateway, jwt: string, id: string): Promise<void> {
  const response = await fetch(`${gateway.url}/sessions/${id}`, { method: "DELETE", headers: { Authorization: `Bearer ${jwt}` } });
  await response.text();
  if (response.status !== 200) throw new Error(`DELETE /sessions/${id}: HTTP ${response.status}`);
}

/** Two fresh accounts, one per path, each warmed by one untimed creation of `model`. */
async function accountPair(gateway: TestGateway, models: string[]): Promise<Record<Variant, string>> {
  const pair = { with: await clientToken(gateway), without: await clientToken(gateway) };
  for (const variant of VARIANTS) {
    for (const model of models) await deleteSession(gateway, pair[variant], (await createSession(gateway, variant, pair[variant], model)).id);
  }
  return pair;
}

type Samples = Record<Variant, number[]> & { differences: number[] };

/**
 * PER_ACCOUNT pairs of creations of `model`, the two paths back to back (their order alternating), each session
 * deleted untimed: both requests of a pair see the same machine load, whatever else runs.
 */
async function pairedRun(gateway: TestGateway, pair: Record<Variant, string>, model: string, samples: Samples): Promise<void> {
  for (let i = 0; i < PER_ACCOUNT; i++) {
    const ms = {} as Record<Variant, number>;
    for (const variant of i % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
      const created = await createSession(gateway, variant, pair[variant], model);
      ms[variant] = created.ms;
      await deleteSession(gateway, pair[variant], created.id);
    }
    samples.with.push(ms.with);
    samples.without.push(ms.without);
    samples.differences.push((ms.with - ms.without) * 1000);
  }
}

function summarize(times: number[]): VariantFigures {
  return {
    requests: times.length,
    p50Ms: median(times),
    p90Ms: quantile(times, 0.9),
    p99Ms: quantile(times, 0.99),
    meanMs: times.reduce((sum, t) => sum + t, 0) / times.length,
  };
}

const newSamples = (): Samples => ({ with: [], without: [], differences: [] });

function loadFigures(samples: Samples): LoadFigures {
  return {
    with: summarize(samples.with),
    without: summarize(samples.without),
    costUs: median(samples.differences),
    costIqrUs: [quantile(samples.differences, 0.25), quantile(samples.differences, 0.75)],
  };
}

async function measure(gateway: TestGateway, settings: Settings, ctx: SuiteContext): Promise<Omit<LimitCheckFigures, "storage">> {
  const sequential = newSamples();
  for (let n = 0; n < settings.sequentialAccounts; n++) {
    ctx.progress(`one at a time: account pair ${n + 1} of ${settings.sequentialAccounts}`);
    await pairedRun(gateway, await accountPair(gateway, ["bench"]), "bench", sequential);
  }
  const concurrent = newSamples();
  const models = Array.from({ length: IN_FLIGHT }, (_, i) => `bench-${i}`);
  for (let n = 0; n < settings.concurrentAccounts; n++) {
    ctx.progress(`${IN_FLIGHT} in flight on one account: account pair ${n + 1} of ${settings.concurrentAccounts}`);
    const pair = await accountPair(gateway, models);
    await Promise.all(models.map((model) => pairedRun(gateway, pair, model, concurrent)));
  }
  return { sequential: loadFigures(sequential), concurrent: loadFigures(concurrent) };
}

function markdown(figures: LimitCheckFigures, settings: Settings): string {
  const row = (load: string, variant: Variant, f: VariantFigures) =>
    `| ${load} | ${variant === "with" ? "with the check" : "without"} | ${grouped(f.requests)} | ${fixed(f.p50Ms, 2)} | ${fixed(f.p90Ms, 2)} | ${fixed(f.p99Ms, 2)} | ${fixed(f.meanMs, 2)} |`;
  const cost = (f: LoadFigures) => `${fixed(f.costUs, 0)} µs (IQR ${fixed(f.costIqrUs[0], 0)} to ${fixed(f.costIqrUs[1], 0)})`;
  const concurrentLoad = `${IN_FLIGHT} in flight, one account`;
  return [
    "What the account limit check (concurrent sessions, creations per minute per model, the token's max_sessions: " +
      "one call to the account's `AccountLimits` Durable Object, which checks and takes the slot in one synchronous " +
      "step) adds to `POST /sessions`, next to the same path with the check answered in-process.",
    [
      "| Load | Path | requests | p50 ms | p90 ms | p99 ms | mean ms |",
      "|---|---|---|---|---|---|---|",
      row("1 at a time", "with", figures.sequential.with),
      row("1 at a time", "without", figures.sequential.without),
      row(concurrentLoad, "with", figures.concurrent.with),
      row(concurrentLoad, "without", figures.concurrent.without),
    ].join("\n"),
    `**Cost of the check per request (median of paired differences): ${cost(figures.sequential)} one at a time; ` +
      `${cost(figures.concurrent)} with ${IN_FLIGHT} in flight on one account.**`,
    "Method: the bench Worker (bench/workers/limit-check) runs the gateway's own app under `wrangler dev` (workerd) on " +
      "loopback; `/unlimited/sessions` is the same route with `ACCOUNT_LIMITS` replaced by an in-process allow-all stand-in that " +
      "allows everything, so the two paths differ only by the check. Node times each POST /sessions (JWT verification, " +
      "validation, the check, the session object's creation and its pool enqueue, the answer); each session is deleted " +
      "right after, untimed, so an account holds at most a few slots, as a real one does. Requests go in pairs, one per " +
      "path, back to back (order alternating), and the cost is the median of the pairs' differences, which cancels the " +
      `load the machine is under. Fresh accounts (one per path), each warmed by one untimed creation per model, then ` +
      `${PER_ACCOUNT} timed creations per model (under the 50 per minute allowed): ${settings.sequentialAccounts} account ` +
      `pairs one request at a time, ${settings.concurrentAccounts} with ${IN_FLIGHT} workers on one account (one model ` +
      `each), where the account's object serializes the checks. Durable Object SQLite on ${figures.storage}` +
      (figures.storage === "tmpfs" ? " (no fsync: the code's own cost; on disk each write adds an fsync)." : "."),
  ].join("\n\n");
}

export async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const settings: Settings = ctx.quick ? { sequentialAccounts: 1, concurrentAccounts: 1 } : { sequentialAccounts: 12, concurrentAccounts: 4 };
  const storage = existsSync("/dev/shm") ? "tmpfs" : "disk";
  ctx.progress(`starting the bench Worker under wrangler dev (state on ${storage}) …`);
  // IN_FLIGHT models × 40 creations a minute on one account: over the account-wide default (100), so raised.
  const gateway = await startGateway({
    configPath: CONFIG,
    workRoot: storage === "tmpfs" ? "/dev/shm" : undefined,
    vars: { LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE: "1000" },
  });
  for (const model of ["bench", ...Array.from({ length: IN_FLIGHT }, (_, i) => `bench-${i}`)]) await registerModel(gateway, model);
  try {
    const figures: LimitCheckFigures = { storage, ...(await measure(gateway, settings, ctx)) };
    ctx.progress(
      `the check costs ${fixed(figures.sequential.costUs, 0)} µs one at a time, ${fixed(figures.concurrent.costUs, 0)} µs with ${IN_FLIGHT} in flight`,
    );
    return { figures: { settings, ...figures }, markdown: markdown(figures, settings) };
  } finally {
    await gateway.stop();
  }
}
