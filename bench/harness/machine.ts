/** What the benchmarks ran on, for the report. */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  workerd: string;
  wrangler: string;
  /** 1-minute load average when the run started: other work on the machine skews the figures. */
  loadAverage: number;
}

const require = createRequire(import.meta.url);

/** Resolves a package the way wrangler does (workerd is its dependency, not ours). */
function packageDir(name: string): string {
  const from = name === "wrangler" ? [] : [path.dirname(require.resolve("wrangler/package.json"))];
  return path.dirname(require.resolve(`${name}/package.json`, { paths: from.length ? from : undefined }));
}

async function packageVersion(name: string): Promise<string | undefined> {
  try {
    return (JSON.parse(await readFile(path.join(packageDir(name), "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** `workerd --version` says which runtime build (date) it is; the npm package version says which release. */
async function workerdVersion(): Promise<string> {
  const release = await packageVersion("workerd");
  let build: string | undefined;
  try {
    const bin = path.join(packageDir("workerd"), "bin", "workerd");
    const { stdout } = await promisify(execFile)(bin, ["--version"], { timeout: 10_000 });
    build = stdout.trim();
  } catch {
    // the version of the npm package is enough
  }
  return [release && `npm workerd ${release}`, build].filter(Boolean).join(" / ") || "unknown";
}

export async function describeMachine(): Promise<Machine> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() || "unknown",
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    workerd: await workerdVersion(),
    wrangler: (await packageVersion("wrangler")) ?? "unknown",
    loadAverage: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}
