/** Small statistics for repeated measurements: medians, nearest-rank quantiles, latency distributions. */

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Nearest-rank quantile of already sorted values, q in [0, 1]: the one rank rule every figure here uses. */
function nearestRank(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Nearest-rank quantile, q in [0, 1]. */
export function quantile(values: number[], q: number): number {
  return nearestRank(
    [...values].sort((a, b) => a - b),
    q,
  );
}

/** Nearest-rank percentile of already sorted values, p in (0, 100]. */
export function percentile(sorted: number[], p: number): number {
  return nearestRank(sorted, p / 100);
}

/** "12.3" with a fixed number of decimals, or "n/a". */
export function fixed(value: number, decimals = 1): string {
  return Number.isFinite(value) ? value.toFixed(decimals) : "n/a";
}

/** 12345 → "12,345". */
export function grouped(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "n/a";
}

/** Latency percentiles, throughput and CPU cost from a run's samples. */
export interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LatencySummary extends Distribution {
  /** Round trips per second. */
  throughput: number;
  /** Server CPU per relayed message; a round trip relays two (one each way). */
  cpuUsPerMessage: number;
}

export function distribution(samples: number[]): Distribution {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
  };
}

export function summarize(samples: number[], elapsedMs: number, serverCpuMs: number): LatencySummary {
  const figures = distribution(samples);
  return {
    ...figures,
    throughput: (figures.count * 1000) / elapsedMs,
    cpuUsPerMessage: (serverCpuMs * 1000) / (2 * figures.count),
  };
}
