/**
 * A small process supervisor for `npm start`: it starts child processes (each in its own process group), forwards
 * their output line by line with a name prefix, and stops all of them (children of children included) on Ctrl-C,
 * SIGTERM, or when one of them exits on its own.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { stopGroup } from "./process-group.ts";

/** Runs each child, and stops its group if we die without stopping it (see tether.ts). */
const TETHER = path.join(path.dirname(fileURLToPath(import.meta.url)), "tether.ts");

export interface ChildSpec {
  /** Shown as the `[name]` prefix of the child's output. */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ChildExit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export type OutputSink = (name: string, line: string, stream: "stdout" | "stderr") => void;

const COLORS = [36, 35, 33, 32, 34, 31];
const useColor = () => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

/** Writes `[name] line`, names padded to one width, coloured on a terminal. */
export function prefixedOutput(names: string[] = []): OutputSink {
  const width = Math.max(0, ...names.map((name) => name.length));
  const colors = new Map<string, number>();
  return (name, line, stream) => {
    if (!colors.has(name)) colors.set(name, COLORS[colors.size % COLORS.length]!);
    const label = `[${name}]`.padEnd(width + 2);
    const prefix = useColor() ? `\x1b[${colors.get(name)}m${label}\x1b[0m` : label;
    (stream === "stderr" ? process.stderr : process.stdout).write(`${prefix} ${line}\n`);
  };
}

export class ManagedChild {
  readonly name: string;
  /** The tether's pid, which is also the id of the child's process group. */
  readonly pid: number;
  /** Resolves when the child itself has exited (its process group may take a moment longer). */
  readonly exited: Promise<ChildExit>;
  #stopRequested = false;

  constructor(spec: ChildSpec, output: OutputSink) {
    this.name = spec.name;
    const child = spawn(process.execPath, [TETHER, spec.command, ...spec.args], {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      // stdin: the tether's lifeline, never written to; it closes when this process goes away.
      stdio: ["pipe", "pipe", "pipe"],
      detached: true, // own process group: Ctrl-C reaches only the supervisor, which then stops the whole group
    });
    this.exited = new Promise((resolve) => {
      child.once("error", (error) => resolve({ name: spec.name, code: null, signal: null, error }));
      child.once("exit", (code, signal) => resolve({ name: spec.name, code, signal }));
    });
    this.pid = child.pid ?? -1;
    for (const stream of ["stdout", "stderr"] as const) {
      createInterface({ input: child[stream], crlfDelay: Infinity }).on("line", (line) => output(spec.name, line, stream));
    }
  }

  /** True once stop() was called: its exit is then expected. */
  get stopRequested(): boolean {
    return this.#stopRequested;
  }

  /** SIGTERM to the child's process group, SIGKILL after `graceMs`; resolves when every process of it is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopRequested = true;
    if (this.pid > 0) await stopGroup(this.pid, graceMs);
    await this.exited;
  }
}

export class Supervisor {
  readonly #children: ManagedChild[] = [];
  readonly #output: OutputSink;
  #stopping: Promise<void> | undefined;
  readonly #name: string;
  readonly #unexpectedExit: ((exit: ChildExit) => void) | undefined;

  constructor(options: { name?: string; output?: OutputSink; onUnexpectedExit?: (exit: ChildExit) => void } = {}) {
    this.#name = options.name ?? "supervisor";
    this.#output = options.output ?? prefixedOutput([this.#name]);
    this.#unexpectedExit = options.onUnexpectedExit;
  }

  get children(): readonly ManagedChild[] {
    return this.#children;
  }

  get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  start(spec: ChildSpec): ManagedChild {
    if (this.stopping) throw new Error(`not starting ${spec.name}: the supervisor is stopping`);
    const child = new ManagedChild(spec, this.#output);
    this.#children.push(child);
    void child.exited.then((exit) => {
      if (!child.stopRequested && !this.stopping) this.#unexpectedExit?.(exit);
    });
    return child;
  }

  /** Prints a line of the supervisor's own (or of a step it runs, under `name`), prefixed like the children's. */
  log(line: string, stream: "stdout" | "stderr" = "stdout", name = this.#name): void {
    this.#output(name, line, stream);
  }

  /** Stops every child, newest first (later children may depend on earlier ones). Safe to call more than once. */
  stopAll(graceMs = 10_000): Promise<void> {
    this.#stopping ??= (async () => {
      for (const child of [...this.#children].reverse()) {
        try {
          await child.stop(graceMs);
        } catch (error) {
          this.log(`could not stop ${child.name}: ${(error as Error).message}`, "stderr");
        }
      }
    })();
    return this.#stopping;
  }

  /**
   * On SIGINT (Ctrl-C) or SIGTERM: stop every child, then exit with 130 or 143. A second signal while stopping
   * stops the children at once with SIGKILL.
   */
  exitOnSignals(): void {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.stopping) {
        this.log(`${signal} again: killing children now`, "stderr");
        void Promise.all(this.#children.map((child) => child.stop(0))).finally(() => process.exit(1));
        return;
      }
      this.log(`${signal}: stopping ${this.#children.map((child) => child.name).join(", ") || "nothing"}…`);
      void this.stopAll().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
}
