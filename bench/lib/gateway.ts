/** Gateway helpers for benchmarks: a throwaway `wrangler dev` gateway (test/node/support), a client token, CPU use. */
import { readFile } from "node:fs/promises";
import { randomId } from "../../src/auth/encoding.ts";
import { startGateway, type TestGateway } from "../../test/node/support/gateway.ts";
import { descendants } from "../../test/node/support/processes.ts";

export { startGateway, type TestGateway };

/** An API key of a fresh account, created through the admin API, traded for a client token. */
export async function clientToken(gateway: TestGateway, account = `bench-${randomId(6).toLowerCase().replace(/[^a-z0-9]/g, "x")}`): Promise<string> {
  const created = await fetch(`${gateway.url}/admin/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${gateway.adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ account }),
  });
  if (created.status !== 201) throw new Error(`POST /admin/keys: ${created.status} ${await created.text()}`);
  const { key } = (await created.json()) as { key: string };
  const minted = await fetch(`${gateway.url}/tokens`, { method: "POST", headers: { "Reactor-API-Key": key } });
  if (minted.status !== 200) throw new Error(`POST /tokens: ${minted.status} ${await minted.text()}`);
  return ((await minted.json()) as { jwt: string }).jwt;
}

/** The workerd processes serving a gateway, for CPU accounting. */
export function workerdPids(gateway: TestGateway): number[] {
  return descendants(gateway.pid)
    .filter((info) => info.command === "workerd")
    .map((info) => info.pid);
}

/** CPU time (user + system) a process has used so far, in ms, from /proc. */
export async function processCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ (100) ticks
}
