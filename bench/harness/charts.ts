/**
 * Small hand-written SVG charts for BENCHMARKS.md (no dependencies): grouped bars and step curves. A suite returns
 * them in `SuiteResult.charts`; bench/run.ts writes each to `docs/<file>` next to the report, and the suite's
 * markdown links them as `docs/<file>`.
 */

export interface Chart {
  /** File name under docs/, e.g. "benchmarks-peers.svg". */
  file: string;
  svg: string;
}

export interface Series {
  name: string;
  values: number[];
}

const PALETTE = ["#8c8c8c", "#e8a33d", "#2f6db5", "#3b9b5b", "#b5452f", "#7a52a8"];
const FONT = `font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"`;

const escapeXml = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/** 1234.5 → "1.2k", 0.0123 → "0.012": short tick and value labels. */
export function shortNumber(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(abs >= 1e7 ? 0 : 1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs === 0) return "0";
  return value.toPrecision(2);
}

interface Axis {
  min: number;
  max: number;
  ticks: number[];
  /** 0 at min, 1 at max. */
  scale(value: number): number;
}

function linearAxis(maxValue: number): Axis {
  const max = maxValue > 0 ? maxValue : 1;
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? rough;
  const top = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let tick = 0; tick <= top + step / 2; tick += step) ticks.push(tick);
  return { min: 0, max: top, ticks, scale: (value) => Math.max(0, Math.min(1, value / top)) };
}

function logAxis(minValue: number, maxValue: number): Axis {
  const low = 10 ** Math.floor(Math.log10(Math.max(minValue, 1e-6)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(maxValue, low * 10)));
  const ticks: number[] = [];
  // Decades; with only one or two of them, 2× and 5× ticks too.
  const steps = high / low <= 100 ? [1, 2, 5] : [1];
  for (let decade = low; decade <= high * 1.0001; decade *= 10) {
    for (const step of steps) if (decade * step <= high * 1.0001) ticks.push(decade * step);
  }
  const span = Math.log10(high) - Math.log10(low);
  return { min: low, max: high, ticks, scale: (value) => (value <= 0 ? 0 : Math.max(0, Math.min(1, (Math.log10(value) - Math.log10(low)) / span))) };
}

function frame(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600" fill="#222">${escapeXml(title)}</text>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

function legend(series: { name: string }[], x: number, y: number, colorOffset = 0): string[] {
  const items: string[] = [];
  let offset = x;
  series.forEach((entry, index) => {
    items.push(`<rect x="${offset}" y="${y - 10}" width="12" height="12" fill="${PALETTE[(index + colorOffset) % PALETTE.length]}"/>`);
    items.push(`<text x="${offset + 17}" y="${y}" fill="#333">${escapeXml(entry.name)}</text>`);
    offset += 30 + entry.name.length * 7;
  });
  return items;
}

export interface BarPanel {
  title: string;
  unit: string;
  /** Log scale: for values that span orders of magnitude (latency at 1 vs 1,000 sessions). */
  log?: boolean;
  series: Series[];
}

/**
 * Panels side by side, each a grouped bar chart over the same groups (e.g. sessions 1 / 100 / 1,000), one bar per
 * series (e.g. floor / PeerJS / gateway), each labelled with its value.
 */
export function barPanels(options: { title: string; groups: string[]; groupLabel: string; panels: BarPanel[]; note?: string }): string {
  const panelWidth = 330;
  const panelHeight = 250;
  const top = 60;
  const left = 55;
  const width = options.panels.length * (panelWidth + left) + 20;
  const height = top + panelHeight + 70 + (options.note ? 18 : 0);
  const body: string[] = [];
  options.panels.forEach((panel, p) => {
    const x0 = 20 + p * (panelWidth + left) + left;
    const values = panel.series.flatMap((series) => series.values).filter((value) => Number.isFinite(value) && value > 0);
    const axis = panel.log ? logAxis(Math.min(...values, 1), Math.max(...values, 1)) : linearAxis(Math.max(...values, 0));
    const y = (value: number) => top + panelHeight - axis.scale(value) * panelHeight;
    body.push(`<text x="${x0 + panelWidth / 2}" y="${top - 12}" text-anchor="middle" font-weight="600" fill="#333">${escapeXml(panel.title)}</text>`);
    for (const tick of axis.ticks) {
      body.push(`<line x1="${x0}" x2="${x0 + panelWidth}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#e4e4e4"/>`);
      body.push(`<text x="${x0 - 6}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end" fill="#666" font-size="11">${shortNumber(tick)}</text>`);
    }
    body.push(
      `<text transform="translate(${x0 - 42},${top + panelHeight / 2}) rotate(-90)" text-anchor="middle" fill="#555" font-size="11">${escapeXml(panel.unit)}${panel.log ? " (log)" : ""}</text>`,
    );
    const groupWidth = panelWidth / options.groups.length;
    const barWidth = Math.min(28, (groupWidth - 16) / panel.series.length);
    options.groups.forEach((group, g) => {
      const gx = x0 + g * groupWidth + (groupWidth - barWidth * panel.series.length) / 2;
      panel.series.forEach((series, s) => {
        const value = series.values[g];
        const bx = gx + s * barWidth;
        if (value === undefined || !Number.isFinite(value)) {
          body.push(
            `<text x="${(bx + barWidth / 2).toFixed(1)}" y="${top + panelHeight - 4}" text-anchor="middle" fill="#999" font-size="10">–</text>`,
          );
          return;
        }
        const by = y(value);
        body.push(
          `<rect x="${bx.toFixed(1)}" y="${by.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(top + panelHeight - by).toFixed(1)}" fill="${PALETTE[s % PALETTE.length]}"><title>${escapeXml(`${series.name}, ${group}: ${shortNumber(value)} ${panel.unit}`)}</title></rect>`,
        );
        body.push(
          `<text x="${(bx + barWidth / 2 - 1).toFixed(1)}" y="${(by - 3).toFixed(1)}" text-anchor="middle" fill="#333" font-size="9">${shortNumber(value)}</text>`,
        );
      });
      body.push(
        `<text x="${(x0 + g * groupWidth + groupWidth / 2).toFixed(1)}" y="${top + panelHeight + 16}" text-anchor="middle" fill="#333">${escapeXml(group)}</text>`,
      );
    });
    body.push(`<line x1="${x0}" x2="${x0 + panelWidth}" y1="${top + panelHeight}" y2="${top + panelHeight}" stroke="#999"/>`);
    body.push(
      `<text x="${x0 + panelWidth / 2}" y="${top + panelHeight + 34}" text-anchor="middle" fill="#555" font-size="11">${escapeXml(options.groupLabel)}</text>`,
    );
  });
  const series = options.panels[0]?.series ?? [];
  body.push(...legend(series, 20 + left, top + panelHeight + 58));
  if (options.note) body.push(`<text x="20" y="${height - 8}" fill="#777" font-size="11">${escapeXml(options.note)}</text>`);
  return frame(width, height, options.title, body);
}

/**
 * Cumulative distributions: for each series of samples (ms), the share of samples at or below each value, on a
 * log time axis. Marks at p50 and p99 make the tail visible.
 */
export function cdfChart(options: {
  title: string;
  unit: string;
  series: Series[];
  note?: string;
  markers?: { label: string; at: number }[];
}): string {
  const width = 720;
  const height = 380 + (options.note ? 18 : 0);
  const left = 70;
  const top = 45;
  const plotWidth = width - left - 30;
  const plotHeight = 260;
  const all = options.series.flatMap((series) => series.values).filter((value) => value > 0 && Number.isFinite(value));
  const axis = logAxis(
    Math.min(...all, ...(options.markers ?? []).map((marker) => marker.at)),
    Math.max(...all, ...(options.markers ?? []).map((marker) => marker.at)),
  );
  const x = (value: number) => left + axis.scale(value) * plotWidth;
  const y = (share: number) => top + plotHeight - share * plotHeight;
  const body: string[] = [];
  for (const share of [0, 0.25, 0.5, 0.75, 0.9, 0.99]) {
    body.push(
      `<line x1="${left}" x2="${left + plotWidth}" y1="${y(share).toFixed(1)}" y2="${y(share).toFixed(1)}" stroke="${share === 0.5 || share === 0.99 ? "#cfcfcf" : "#eeeeee"}"/>`,
    );
    body.push(
      `<text x="${left - 6}" y="${(y(share) + 4).toFixed(1)}" text-anchor="end" fill="#666" font-size="11">${Math.round(share * 100)} %</text>`,
    );
  }
  for (const tick of axis.ticks) {
    body.push(`<line x1="${x(tick).toFixed(1)}" x2="${x(tick).toFixed(1)}" y1="${top}" y2="${top + plotHeight}" stroke="#eeeeee"/>`);
    body.push(
      `<text x="${x(tick).toFixed(1)}" y="${top + plotHeight + 16}" text-anchor="middle" fill="#666" font-size="11">${shortNumber(tick)}</text>`,
    );
  }
  (options.markers ?? []).forEach((marker, index) => {
    // Labels stacked from the bottom up, so markers close together stay readable.
    const labelY = top + plotHeight - 8 - index * 15;
    body.push(
      `<line x1="${x(marker.at).toFixed(1)}" x2="${x(marker.at).toFixed(1)}" y1="${top}" y2="${top + plotHeight}" stroke="#b5452f" stroke-dasharray="4 3"/>`,
    );
    body.push(
      `<text x="${(x(marker.at) - 4).toFixed(1)}" y="${labelY}" text-anchor="end" fill="#b5452f" font-size="11">${escapeXml(marker.label)}</text>`,
    );
  });
  options.series.forEach((series, index) => {
    const sorted = series.values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
    if (sorted.length === 0) return;
    // At most ~400 points: enough for a smooth curve, small enough for the file.
    const stride = Math.max(1, Math.floor(sorted.length / 400));
    const points: string[] = [];
    for (let i = 0; i < sorted.length; i += stride) points.push(`${x(sorted[i]!).toFixed(1)},${y((i + 1) / sorted.length).toFixed(1)}`);
    points.push(`${x(sorted.at(-1)!).toFixed(1)},${y(1).toFixed(1)}`);
    body.push(`<polyline fill="none" stroke="${PALETTE[(index + 1) % PALETTE.length]}" stroke-width="2" points="${points.join(" ")}"/>`);
  });
  body.push(`<rect x="${left}" y="${top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#999"/>`);
  body.push(
    `<text x="${left + plotWidth / 2}" y="${top + plotHeight + 34}" text-anchor="middle" fill="#555" font-size="11">${escapeXml(options.unit)} (log)</text>`,
  );
  body.push(...legend(options.series, left, top + plotHeight + 58, 1));
  if (options.note) body.push(`<text x="20" y="${height - 8}" fill="#777" font-size="11">${escapeXml(options.note)}</text>`);
  return frame(width, height, options.title, body);
}
