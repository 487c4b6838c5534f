/** BENCHMARKS.md rendering: a run of some suites (`--only`) keeps the other suites' sections from the last file. */
import { describe, expect, it } from "vitest";
import type { Machine } from "../../bench/harness/machine.ts";
import { parseSections, renderReport, renderSection } from "../../bench/harness/report.ts";
import { median, quantile } from "../../bench/harness/stats.ts";

const machine: Machine = {
  cpu: "Test CPU",
  cores: 2,
  memoryGiB: 4,
  os: "Linux",
  node: "v24.0.0",
  workerd: "npm workerd 1.0 / workerd 2026-01-01",
  wrangler: "4.0.0",
  loadAverage: 0.5,
};

const section = (name: string, body: string, passed?: boolean) =>
  renderSection({ name, title: name.toUpperCase(), markdown: body, passed, quick: true, date: new Date(0), seconds: 3 });

describe("benchmark report", () => {
  it("renders the machine, then each suite's section with its verdict", () => {
    const report = renderReport({
      machine,
      date: new Date(0),
      suites: [{ name: "a", section: section("a", "alpha figures", true) }],
      previous: new Map(),
    });
    expect(report).toContain("| CPU | Test CPU |");
    expect(report).toContain("| Node | v24.0.0 |");
    expect(report).toContain("## A");
    expect(report).toContain("targets: **PASS**");
    expect(report).toContain("alpha figures");
  });

  it("keeps sections of suites that did not run, replaces those that did, drops removed suites", () => {
    const old = renderReport({
      machine,
      date: new Date(0),
      suites: [
        { name: "a", section: section("a", "old alpha") },
        { name: "b", section: section("b", "old beta") },
        { name: "gone", section: section("gone", "old gone") },
      ],
      previous: new Map(),
    });
    const previous = parseSections(old);
    expect([...previous.keys()]).toEqual(["a", "b", "gone"]);

    const next = renderReport({
      machine,
      date: new Date(0),
      suites: [{ name: "a" }, { name: "b", section: section("b", "new beta", false) }],
      previous,
    });
    expect(next).toContain("old alpha");
    expect(next).toContain("new beta");
    expect(next).toContain("targets: **FAIL**");
    expect(next).not.toContain("old beta");
    expect(next).not.toContain("old gone");
    expect(next.indexOf("old alpha")).toBeLessThan(next.indexOf("new beta"));
  });

  it("computes medians and quartiles", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(quantile([10, 20, 30, 40], 0.25)).toBe(10);
    expect(quantile([10, 20, 30, 40], 0.75)).toBe(30);
    expect(median([])).toBeNaN();
  });
});
