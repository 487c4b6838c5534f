/**
 * The contract between `npm run bench` (bench/run.ts) and a suite. A suite is a module in bench/suites/ exporting:
 *   export const name = "jwt-verify";              // short id, used by --only and in BENCHMARKS.md markers
 *   export const title = "JWT verification";       // optional heading
 *   export const order = 10;                       // optional: place in the run and the report (default 50)
 *   export async function run(ctx: SuiteContext): Promise<SuiteResult>
 */
import type { Chart } from "./charts.ts";

export interface SuiteContext {
  /** `--quick`: fewer iterations, for a fast smoke run (each suite should keep this well under a minute). */
  quick: boolean;
  /** One line of progress, shown on the terminal while the suite runs. */
  progress(line: string): void;
}

export interface SuiteResult {
  /** Raw figures, saved as JSON next to the report (bench/results/). */
  figures: unknown;
  /** The suite's section of BENCHMARKS.md, without its top heading (the harness adds it). */
  markdown: string;
  /** Whether the suite's targets were met; undefined for suites without targets. */
  passed?: boolean;
  /**
   * SVG charts (bench/harness/charts.ts), written to `docs/<file>` next to the report; the markdown links them as
   * `docs/<file>`.
   */
  charts?: Chart[];
}

export interface Suite {
  name: string;
  title?: string;
  /** Place in the run and in BENCHMARKS.md, lowest first (default 50; ties by file name). */
  order?: number;
  run(ctx: SuiteContext): Promise<SuiteResult>;
}

export function isSuite(module: unknown): module is Suite {
  const candidate = module as Partial<Suite> | null;
  return typeof candidate?.name === "string" && typeof candidate.run === "function";
}
