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

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
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
