/**
 * A small process supervisor for `npm start`: it starts child processes (each in its own process group), forwards
 * their output line by line with a name prefix, and stops all of them (children of children included) on Ctrl-C or
 * SIGTERM. A child that exits on its own is restarted if its spec has a restart policy (restart-policy.ts) and the
 * policy agrees; otherwise, or once the policy gives up, the supervisor's owner is told (`onUnexpectedExit`).
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { stopGroup } from "./process-group.ts";
import type { RestartPolicy } from "./restart-policy.ts";

/** Runs each child, and stops its group if we die without stopping it (see tether.ts). */
const TETHER = path.join(path.dirname(fileURLToPath(import.meta.url)), "tether.ts");

export interface ChildSpec {
  /** Shown as the `[name]` prefix of the child's output. */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Restart it when it exits on its own, as the policy says (default: never). Read at each exit, so it may be set
   * once the child is known to start properly.
   */
  restart?: RestartPolicy;
}

export interface ChildExit {
  name: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
  /** How long it ran. */
  ranMs: number;
  /** Set when its restart policy gave up on it: why. */
  gaveUp?: string;
}

/** A restart that is coming: after `delayMs`, the `attempt`-th since the child last ran a while. */
export interface PlannedRestart {
  delayMs: number;
  attempt: number;
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
    const startedAt = performance.now();
    const ranMs = () => Math.round(performance.now() - startedAt);
    const child = spawn(process.execPath, [TETHER, spec.command, ...spec.args], {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      // stdin: the tether's lifeline, never written to; it closes when this process goes away.
      stdio: ["pipe", "pipe", "pipe"],
      detached: true, // own process group: Ctrl-C reaches only the supervisor, which then stops the whole group
    });
    this.exited = new Promise((resolve) => {
      child.once("error", (error) => resolve({ name: spec.name, code: null, signal: null, error, ranMs: ranMs() }));
      child.once("exit", (code, signal) => resolve({ name: spec.name, code, signal, ranMs: ranMs() }));
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
  readonly #onRestart: ((exit: ChildExit, restart: PlannedRestart) => void) | undefined;
  readonly #restartTimers = new Set<NodeJS.Timeout>();

  constructor(
    options: {
      name?: string;
      output?: OutputSink;
      /** A child exited on its own and is not restarted (no policy, or it gave up: `exit.gaveUp`). */
      onUnexpectedExit?: (exit: ChildExit) => void;
      /** A child exited on its own and will be restarted. */
      onRestart?: (exit: ChildExit, restart: PlannedRestart) => void;
    } = {},
  ) {
    this.#name = options.name ?? "supervisor";
    this.#output = options.output ?? prefixedOutput([this.#name]);
    this.#unexpectedExit = options.onUnexpectedExit;
    this.#onRestart = options.onRestart;
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
    this.#watch(child, spec);
    return child;
  }

  /** The running process of the child named `name` (a restart replaces it). */
  child(name: string): ManagedChild | undefined {
    return this.#children.find((child) => child.name === name);
  }

  #watch(child: ManagedChild, spec: ChildSpec): void {
    void child.exited.then((exit) => {
      if (child.stopRequested || this.stopping) return;
      const decision = spec.restart?.afterCrash(exit.ranMs);
      if (!decision) return this.#unexpectedExit?.(exit);
      if (!decision.restart) return this.#unexpectedExit?.({ ...exit, gaveUp: decision.reason });
      this.#onRestart?.(exit, { delayMs: decision.delayMs, attempt: decision.attempt });
      // What the crashed process left in its group goes first (its own tethered children go by themselves).
      void child
        .stop(2000)
        .catch((error: Error) => this.log(`could not stop what ${child.name} left behind: ${error.message}`, "stderr"))
        .then(() => {
          if (this.stopping) return;
          const timer = setTimeout(() => {
            this.#restartTimers.delete(timer);
            if (this.stopping) return;
            const next = new ManagedChild(spec, this.#output);
            this.#children[this.#children.indexOf(child)] = next; // same place: stopAll keeps its order
            this.#watch(next, spec);
          }, decision.delayMs);
          this.#restartTimers.add(timer);
        });
    });
  }

  /** Prints a line of the supervisor's own (or of a step it runs, under `name`), prefixed like the children's. */
  log(line: string, stream: "stdout" | "stderr" = "stdout", name = this.#name): void {
    this.#output(name, line, stream);
  }

  /** Stops every child, newest first (later children may depend on earlier ones). Safe to call more than once. */
  stopAll(graceMs = 10_000): Promise<void> {
    this.#stopping ??= (async () => {
      for (const timer of this.#restartTimers) clearTimeout(timer);
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
