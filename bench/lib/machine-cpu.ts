/**
 * How busy the whole machine was over an interval, every process included (ours and anyone else's: the bench
 * machine may be shared), from the first line of /proc/stat (Linux).
 */
import { readFileSync } from "node:fs";
import os from "node:os";

interface CpuTicks {
  busy: number;
  total: number;
}

function ticks(): CpuTicks {
  try {
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = fields.reduce((sum, value) => sum + value, 0);
    const idle = fields[3]! + fields[4]!;
    return { busy: total - idle, total };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/**
 * Starts measuring; the function returned gives the machine's busy time over the interval so far in cores (2 = both
 * cores of a 2-core machine busy all along), and the core count.
 */
export function machineBusy(): () => { cores: number; busy: number } {
  const before = ticks();
  return () => {
    const now = ticks();
    const cores = os.cpus().length;
    const span = now.total - before.total;
    return { cores, busy: span > 0 ? ((now.busy - before.busy) / span) * cores : Number.NaN };
  };
}
