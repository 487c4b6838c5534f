/**
 * Children are started as leaders of their own process group, so stopping one stops everything it spawned too
 * (wrangler runs a Node wrapper, the CLI, esbuild and two workerd processes).
 */
import { readdirSync, readFileSync } from "node:fs";

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw error;
  }
}

/** Whether any live (non-zombie) process other than `except` is left in the group. Uses /proc where there is one. */
export function groupAlive(pgid: number, except?: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return except === undefined ? signalGroup(pgid, 0) : true; // without /proc, assume the worst
  }
  for (const pid of entries) {
    if (Number(pid) === except) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // Fields after the parenthesised command: state ppid pgrp ...
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z" && state !== "X") return true;
  }
  return false;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitEmpty(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (groupAlive(pgid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * SIGTERM to the whole group, then SIGKILL to whatever is still alive after `graceMs`. Resolves once the group is
 * empty; rejects if even SIGKILL did not empty it within a few seconds.
 */
export async function stopGroup(pgid: number, graceMs = 10_000): Promise<void> {
  if (!signalGroup(pgid, "SIGTERM")) return;
  if (await waitEmpty(pgid, graceMs)) return;
  signalGroup(pgid, "SIGKILL");
  if (!(await waitEmpty(pgid, 5_000))) throw new Error(`processes of group ${pgid} survived SIGKILL`);
}
