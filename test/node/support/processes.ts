/** Process-tree inspection from /proc (Linux), to prove that stopping something left no process behind. */
import { readdirSync, readFileSync } from "node:fs";

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  command: string;
  /** Start time in clock ticks since boot: with the pid, it identifies a process even if its pid is reused. */
  startTime: number;
  state: string;
}

function readProcess(pid: number): ProcessInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const command = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  // After "(comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
  // cstime priority nice num_threads itrealvalue starttime …
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    pid,
    command,
    state: fields[0]!,
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    startTime: Number(fields[19]),
  };
}

export function allProcesses(): ProcessInfo[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readProcess(Number(name)))
    .filter((info): info is ProcessInfo => info !== undefined);
}

/** Every live process below `root`, at any depth (not `root` itself). */
export function descendants(root: number): ProcessInfo[] {
  const processes = allProcesses();
  const children = new Map<number, ProcessInfo[]>();
  for (const info of processes) children.set(info.ppid, [...(children.get(info.ppid) ?? []), info]);
  const found: ProcessInfo[] = [];
  const visit = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      visit(child.pid);
    }
  };
  visit(root);
  return found;
}

/** Those of `processes` still running (same pid and start time, not a zombie). */
export function stillRunning(processes: ProcessInfo[]): ProcessInfo[] {
  return processes.filter((before) => {
    const now = readProcess(before.pid);
    return now !== undefined && now.startTime === before.startTime && now.state !== "Z" && now.state !== "X";
  });
}
