/** The agent's logging: one function, so an embedding program can route lines wherever it wants. */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type Log = (level: LogLevel, message: string) => void;

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * Lines at `minLevel` or above to stderr, as `[runtime] level message`; without the `[runtime]` when `prefix` is
 * empty (a supervisor such as `npm start` adds its own).
 */
export function consoleLog(minLevel: LogLevel = "info", prefix = "runtime"): Log {
  const label = prefix ? `[${prefix}] ` : "";
  return (level, message) => {
    if (ORDER[level] >= ORDER[minLevel]) process.stderr.write(`${label}${level.padEnd(5)} ${message}\n`);
  };
}

/** The same log with a context prefix (`session s_123: …`). */
export function scoped(log: Log, context: string): Log {
  return (level, message) => log(level, `${context}: ${message}`);
}

export const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));
