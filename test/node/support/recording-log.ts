/** A runtime agent log for tests: keeps every line, and shows warnings and errors as they come. */
import type { Log } from "../../../runtime/log.ts";

/** A log that keeps every line (and shows warnings and errors). */
export function recordingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const log = ((level, message) => {
    lines.push(`${level} ${message}`);
    if (level === "warn" || level === "error") process.stderr.write(`[agent] ${level} ${message}\n`);
  }) as Log & { lines: string[] };
  log.lines = lines;
  return log;
}
