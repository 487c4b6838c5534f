/**
 * BENCHMARKS.md: the machine, then one section per suite between `<!-- suite:NAME -->` markers. Sections of suites
 * that did not run this time (`--only`) are kept from the previous file, with their own run date.
 */
import type { Machine } from "./machine.ts";

export interface SectionInput {
  name: string;
  title: string;
  markdown: string;
  passed?: boolean;
  quick: boolean;
  date: Date;
  seconds: number;
  /** 1-minute load average when the suite started: other work on the machine skews its figures. */
  loadAverage?: number;
}

const stamp = (date: Date) =>
  date
    .toISOString()
    .replace("T", " ")
    .replace(/:\d\d\.\d+Z$/, " UTC");

export function renderSection(section: SectionInput): string {
  const verdict = section.passed === undefined ? "" : ` · targets: **${section.passed ? "PASS" : "FAIL"}**`;
  const mode = section.quick ? "quick run (`--quick`)" : "full run";
  return [
    `<!-- suite:${section.name} -->`,
    `## ${section.title}`,
    "",
    `_${stamp(section.date)}, ${mode}, ${section.seconds.toFixed(0)} s${section.loadAverage === undefined ? "" : `, load ${section.loadAverage.toFixed(1)} at start`}${verdict}_`,
    "",
    section.markdown.trim(),
    `<!-- /suite:${section.name} -->`,
  ].join("\n");
}

/** One summary line from a rendered section: its title (linked), when and how it ran, its verdict. */
function summaryRow(section: string): string | undefined {
  const title = /^## (.+)$/m.exec(section)?.[1];
  const stamp = /^_(.+?), (quick run \(`--quick`\)|full run), (\d+) s(?:, load ([\d.]+) at start)?(?: · targets: \*\*(PASS|FAIL)\*\*)?_$/m.exec(
    section,
  );
  if (!title || !stamp) return undefined;
  const anchor = title
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, "")
    .trim()
    .replace(/\s/g, "-");
  const mode = stamp[2]!.startsWith("quick") ? "quick" : "full";
  const verdict = stamp[5] === undefined ? "no targets" : stamp[5] === "PASS" ? "pass" : "**FAIL**";
  const load = stamp[4] === undefined ? "" : `, load ${stamp[4]}`;
  return `| [${title}](#${anchor}) | ${stamp[1]}, ${mode}, ${stamp[3]} s${load} | ${verdict} |`;
}

/** Sections of a previous BENCHMARKS.md, by suite name. */
export function parseSections(markdown: string): Map<string, string> {
  const sections = new Map<string, string>();
  for (const match of markdown.matchAll(/<!-- suite:([\w.-]+) -->[\s\S]*?<!-- \/suite:\1 -->/g)) {
    sections.set(match[1]!, match[0]);
  }
  return sections;
}

export function renderReport(options: {
  machine: Machine;
  date: Date;
  /** Every suite, in order: a fresh section, or undefined to keep the previous one (if any). */
  suites: { name: string; section?: string }[];
  previous: Map<string, string>;
}): string {
  const { machine } = options;
  const rows: [string, string][] = [
    ["Date", stamp(options.date)],
    ["CPU", machine.cpu],
    ["Cores", String(machine.cores)],
    ["Memory", `${machine.memoryGiB} GiB`],
    ["OS", machine.os],
    ["Node", machine.node],
    ["workerd", machine.workerd],
    ["wrangler", machine.wrangler],
    ["Load average at start (1 min)", String(machine.loadAverage)],
  ];
  const sections = options.suites
    .map(({ name, section }) => section ?? options.previous.get(name))
    .filter((section): section is string => section !== undefined);
  const summary = sections.map(summaryRow).filter((row): row is string => row !== undefined);
  return [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts; suites in bench/suites/). Run it again to refresh this file;",
    "`npm run bench -- --quick` is a faster, rougher run. Figures depend on the machine below and on its load.",
    "",
    "## Machine (latest run)",
    "",
    "| | |",
    "|---|---|",
    ...rows.map(([key, value]) => `| ${key} | ${value.replaceAll("|", "\\|")} |`),
    "",
    ...(summary.length > 0
      ? [
          "## Summary",
          "",
          "| suite | run | targets |",
          "|---|---|---|",
          ...summary,
          "",
          "Each section below gives its targets, the measured path and the figures; sections from earlier runs keep their own date.",
          "",
        ]
      : []),
    ...sections.flatMap((section) => [section, ""]),
  ].join("\n");
}
