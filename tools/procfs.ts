/**
 * The one reader of /proc (Linux) for tests and bench: the process tree (to prove that stopping something left no
 * process behind), what a process costs (CPU time, resident memory, open descriptors, listening ports), the
 * open-files limit (raised for load runs that hold tens of thousands of sockets), and how busy the whole machine was.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import os from "node:os";

/** USER_HZ: /proc reports CPU time in these ticks (100 on Linux). */
const TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after "(comm) ", and the command; undefined once the process is gone. */
function readStat(pid: number | string): { command: string; fields: string[] } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  return { command: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), fields: stat.slice(stat.lastIndexOf(")") + 2).split(" ") };
}

/** utime + stime (fields 14 and 15 of stat), in ms. */
function cpuOfFields(fields: string[]): number {
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

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
  const stat = readStat(pid);
  if (stat === undefined) return undefined;
  // After "(comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
  // cstime priority nice num_threads itrealvalue starttime …
  const { command, fields } = stat;
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

/** CPU time (user + system) a process has used so far, in ms; 0 once it is gone. */
export function cpuMs(pid: number): number {
  const stat = readStat(pid);
  return stat === undefined ? 0 : cpuOfFields(stat.fields);
}

/** CPU time of several processes together, in ms. */
export function totalCpuMs(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
}

/** CPU time of every process in a process group (its leader's pid), in ms. */
export function groupCpuMs(pgid: number): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry); // undefined: exited while we looked
    if (stat !== undefined && Number(stat.fields[2]) === pgid) total += cpuOfFields(stat.fields);
  }
  return total;
}

/** Resident memory of a process (VmRSS), in KiB; 0 once it is gone. */
export function rssKiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** TCP ports `pid` listens on (IPv4 and IPv6), from its socket descriptors and /proc/net/tcp{,6}. */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // closed while we looked
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines: string[];
    try {
      lines = readFileSync(table, "utf8").split("\n").slice(1);
    } catch {
      continue;
    }
    for (const line of lines) {
      const [, local, , state, , , , , , inode] = line.trim().split(/\s+/);
      if (state === "0A" && inode && inodes.has(inode)) ports.push(Number.parseInt(local!.split(":").at(-1)!, 16)); // 0A: LISTEN
    }
  }
  return ports;
}

/** The processes of a server started as `root` (itself and everything below it) whose command is `command`. */
export function processesNamed(root: number, command: string): number[] {
  return descendants(root)
    .filter((info) => info.command === command)
    .map((info) => info.pid);
}

export interface OpenFiles {
  total: number;
  sockets: number;
  /** SQLite files (database, -wal, -shm) of Durable Objects that are in memory: hibernated objects close theirs. */
  sqlite: number;
  /**
   * Durable Objects in memory, by class: each holds its database open (wrangler dev keeps them at
   * `<state>/v3/do/<worker>-<Class>/<id>.sqlite`).
   */
  objects: Record<string, number>;
}

/** What a process has open, by kind. */
export function openFiles(pid: number): OpenFiles {
  const counts: OpenFiles = { total: 0, sockets: 0, sqlite: 0, objects: {} };
  let entries: string[];
  try {
    entries = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return counts;
  }
  for (const fd of entries) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while we looked
    }
    counts.total++;
    if (target.startsWith("socket:")) counts.sockets++;
    else if (/\.sqlite(-wal|-shm)?$/.test(target)) {
      counts.sqlite++;
      const object = /\/do\/[^/]*-(\w+)\/(?!metadata)[^/]+\.sqlite$/.exec(target);
      if (object) counts.objects[object[1]!] = (counts.objects[object[1]!] ?? 0) + 1;
    }
  }
  return counts;
}

export interface FileLimit {
  soft: number;
  hard: number;
}

/** The open-files limit of a process (`ulimit -n` is the soft one). */
export function fileLimit(pid: number | "self" = "self"): FileLimit {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((row) => row.startsWith("Max open files"));
  const [soft, hard] = (line ?? "").replace("Max open files", "").trim().split(/\s+/);
  const parse = (value: string | undefined) => (value === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(value) || 1024);
  return { soft: parse(soft), hard: parse(hard) };
}

/**
 * Raises this process's open-files limit to `wanted` (soft and, if allowed, hard) with `prlimit`, so the servers it
 * starts afterwards inherit it. Raising the hard limit needs CAP_SYS_RESOURCE (root); otherwise the soft limit goes
 * up to the hard one. Returns the limit in force afterwards: callers scale their counts to it.
 */
export function raiseFileLimit(wanted: number): { before: FileLimit; after: FileLimit } {
  const before = fileLimit();
  if (before.soft >= wanted) return { before, after: before };
  const attempts = [`--nofile=${wanted}:${Math.max(wanted, before.hard)}`, `--nofile=${Math.min(wanted, before.hard)}:${before.hard}`];
  for (const attempt of attempts) {
    try {
      execFileSync("prlimit", ["--pid", String(process.pid), attempt], { stdio: "ignore", timeout: 5000 });
      break;
    } catch {
      // not allowed (or no prlimit): try the next, smaller step
    }
  }
  return { before, after: fileLimit() };
}

/** "20,000" or "20,000 → 65,536", with why it could not go higher when it was not raised as far as wanted. */
export function describeFileLimit(limit: { before: number; after: number }, wanted?: number): string {
  const format = (value: number) => value.toLocaleString("en-US");
  const raised = limit.after > limit.before ? `${format(limit.before)} → ${format(limit.after)}` : format(limit.after);
  const short = wanted !== undefined && limit.after < wanted;
  return short ? `${raised} (the hard limit; raising it further needs CAP_SYS_RESOURCE, which this machine does not give)` : raised;
}

/** The argv of a process (empty if it is gone). */
export function argv(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** A process's command line, arguments joined by spaces (empty once it is gone). */
export function commandLine(pid: number): string {
  return argv(pid).join(" ");
}

/** MemAvailable from /proc/meminfo, in KiB; undefined where the kernel does not report it. */
export function memAvailableKiB(): number | undefined {
  const match = /MemAvailable:\s+(\d+)\s+kB/.exec(readFileSync("/proc/meminfo", "utf8"));
  return match ? Number(match[1]) : undefined;
}

// How busy the whole machine was over an interval, every process included (ours and anyone else's: the bench machine
// may be shared), from the first line of /proc/stat.

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
