/**
 * `npm run bench [-- --quick] [--only a,b]`: runs the suites in bench/suites/, prints progress, and writes
 * BENCHMARKS.md (plus the raw figures as JSON in bench/results/, which git ignores).
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { PROJECT_ROOT } from "../scripts/lib/paths.ts";
import { describeMachine } from "./harness/machine.ts";
import { parseSections, renderReport, renderSection } from "./harness/report.ts";
import type { Chart } from "./harness/charts.ts";
import { isSuite, type Suite, type SuiteResult } from "./harness/suite.ts";

const HELP = `Run the benchmarks and write BENCHMARKS.md.

Usage: npm run bench [-- options]

Options:
  --quick           Fewer iterations: a fast, rougher run.
  --only <names>    Run only these suites (comma-separated); the other sections of BENCHMARKS.md are kept.
  --out <file>      Write the report here instead of BENCHMARKS.md.
  --strict          Exit with code 1 when a suite misses its targets (a suite that fails to run always does).
  -h, --help        Show this help.`;

const SUITES_DIR = path.join(PROJECT_ROOT, "bench", "suites");
const RESULTS_DIR = path.join(PROJECT_ROOT, "bench", "results");

async function loadSuites(): Promise<Suite[]> {
  const files = (await readdir(SUITES_DIR)).filter((file) => file.endsWith(".ts")).sort();
  const suites: Suite[] = [];
  for (const file of files) {
    const module: unknown = await import(pathToFileURL(path.join(SUITES_DIR, file)).href);
    if (isSuite(module)) suites.push(module);
    else console.warn(`bench/suites/${file} exports no suite (name + run); skipped.`);
  }
  // Stable sort: by `order`, then by file name (the order they were read in).
  return suites.sort((a, b) => (a.order ?? 50) - (b.order ?? 50));
}

async function readIfExists(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch {
    return "";
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      out: { type: "string" },
      strict: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const quick = values.quick;
  const suites = await loadSuites();
  const only = values.only
    ?.split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = only?.filter((name) => !suites.some((suite) => suite.name === name)) ?? [];
  if (unknown.length > 0) {
    console.error(`error: no suite named ${unknown.join(", ")} (suites: ${suites.map((suite) => suite.name).join(", ")})`);
    return 2;
  }
  const selected = only ? suites.filter((suite) => only.includes(suite.name)) : suites;

  const date = new Date();
  const machine = await describeMachine();
  console.log(`Benchmarks (${quick ? "quick" : "full"}) on ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, workerd ${machine.workerd}`);

  const sections = new Map<string, string>();
  const charts: Chart[] = [];
  const figures: Record<string, unknown> = {};
  let failed = 0;
  let missed = 0;
  for (const suite of selected) {
    const title = suite.title ?? suite.name;
    const started = performance.now();
    const loadAverage = os.loadavg()[0]!;
    const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
    console.log(`\n▶ ${title}`);
    let result: SuiteResult;
    try {
      result = await suite.run({ quick, progress: (line) => console.log(`  [${elapsed().padStart(7)}] ${line}`) });
    } catch (error) {
      failed++;
      console.error(`✖ ${title} failed after ${elapsed()}: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
      continue;
    }
    if (result.passed === false) missed++;
    charts.push(...(result.charts ?? []));
    const verdict = result.passed === undefined ? "" : result.passed ? " — targets met" : " — targets MISSED";
    console.log(`✔ ${title} in ${elapsed()}${verdict}`);
    figures[suite.name] = result.figures;
    sections.set(
      suite.name,
      renderSection({
        name: suite.name,
        title,
        markdown: result.markdown,
        passed: result.passed,
        quick,
        date,
        seconds: (performance.now() - started) / 1000,
        loadAverage,
      }),
    );
  }

  const out = path.resolve(process.env.INIT_CWD ?? process.cwd(), values.out ?? path.join(PROJECT_ROOT, "BENCHMARKS.md"));
  const report = renderReport({
    machine,
    date,
    suites: suites.map(({ name }) => ({ name, section: sections.get(name) })),
    previous: parseSections(await readIfExists(out)),
  });
  await writeFile(out, report);
  // Charts go next to the report (docs/ beside BENCHMARKS.md, or beside the --out file), where its links point.
  for (const chart of charts) {
    const file = path.join(path.dirname(out), "docs", chart.file);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, chart.svg);
  }
  await mkdir(RESULTS_DIR, { recursive: true });
  const resultsFile = path.join(RESULTS_DIR, `${date.toISOString().replaceAll(":", "-")}.json`);
  await writeFile(resultsFile, `${JSON.stringify({ date: date.toISOString(), quick, machine, figures }, null, 2)}\n`);
  const chartNote =
    charts.length > 0 ? `, ${charts.length} chart(s) in ${path.relative(process.cwd(), path.join(path.dirname(out), "docs")) || "docs"}` : "";
  console.log(`\nWrote ${path.relative(process.cwd(), out) || out}${chartNote} and ${path.relative(process.cwd(), resultsFile)}`);

  if (failed > 0) return 1;
  return values.strict && missed > 0 ? 1 : 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 2;
}
