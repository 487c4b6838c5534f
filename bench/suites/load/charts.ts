/** The load suite's two charts: the burst's connect → ready distribution, and the idle sessions' memory. */
import os from "node:os";
import { grouped } from "../../harness/format.ts";
import { barPanels, cdfChart, type Chart } from "../../harness/charts.ts";
import { resident } from "./idle.ts";
import { ms } from "./report.ts";
import { TARGETS, type LoadFigures } from "./settings.ts";

export function charts(figures: LoadFigures): Chart[] {
  const { burst, idle } = figures;
  return [
    {
      file: "benchmarks-burst.svg",
      svg: cdfChart({
        title: `Burst: ${grouped(burst.sessions)} sessions at once, POST /sessions → ACTIVE`,
        unit: "ms from the start of POST /sessions",
        series: [
          { name: `gateway: connect → ready (${grouped(burst.ready)} sessions)`, values: burst.samples },
          { name: `floor, bare DO: connect → answer (${grouped(figures.floor.burst.ready)} pairs)`, values: figures.floor.burst.samples },
        ],
        markers: [
          { label: `p50 ${ms(burst.connectToReady.p50)} ms`, at: burst.connectToReady.p50 },
          { label: `p99 ${ms(burst.connectToReady.p99)} ms`, at: burst.connectToReady.p99 },
          { label: "target p99 1 s", at: TARGETS.burstP99Ms },
        ],
        note: `gateway under wrangler dev, state on ${figures.storage}, ${os.cpus().length} cores shared with the clients`,
      }),
    },
    {
      file: "benchmarks-idle.svg",
      svg: barPanels({
        title: `${grouped(idle.sessions)} idle sessions: gateway resident memory`,
        groups: ["before", "sessions ACTIVE", "hibernated"],
        groupLabel: "",
        panels: [
          {
            title: "RSS (MiB)",
            unit: "MiB",
            series: [
              { name: "Worker's workerd", values: [idle.baseline, idle.active, idle.hibernated].map((s) => s.rssKiB.runtime / 1024) },
              { name: "wrangler's proxy", values: [idle.baseline, idle.active, idle.hibernated].map((s) => s.rssKiB.proxy / 1024) },
              { name: "total", values: [idle.baseline, idle.active, idle.hibernated].map((s) => s.rssKiB.total / 1024) },
              {
                name: `floor (bare DO, ${grouped(figures.floor.idle.pairs)} pairs): total`,
                values: [figures.floor.idle.baseline, figures.floor.idle.active, figures.floor.idle.hibernated].map((s) => s.rssKiB.total / 1024),
              },
            ],
          },
          {
            title: "session objects in memory",
            unit: "objects",
            series: [{ name: "Worker's workerd", values: [idle.baseline, idle.active, idle.hibernated].map((s) => resident(s)) }],
          },
        ],
        note: `target: total ≤ ${TARGETS.idleRssMiB} MiB with ${grouped(idle.wanted)} idle sessions`,
      }),
    },
  ];
}
