/**
 * What a server process costs, read from /proc (Linux): CPU time, resident memory, open file descriptors, and the
 * per-process open-files limit (raised for load runs that hold tens of thousands of sockets).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { descendants } from "../../test/node/support/processes.ts";

/** USER_HZ: /proc reports CPU time in these ticks (100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system) a process has used so far, in ms; 0 once it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
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
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid) total += ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
    } catch {
      // exited while we looked
    }
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
