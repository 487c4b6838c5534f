import { exports } from "cloudflare:workers";
import { env } from "cloudflare:workers";
import { createApiKey } from "../../lib/api-keys.ts";
import type { CreatedApiKey } from "../../protocol/api-keys.ts";

export const BASE = "https://gateway.test";

/** How long `expect.poll` waits in the slow suites (fuzz, faults): a loaded 2-core CI machine is slow. */
export const POLL = { timeout: 10_000, interval: 50 };

export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(BASE + path, init));
}

let accounts = 0;
export async function newApiKey(accountId = `acct${++accounts}`): Promise<CreatedApiKey> {
  return createApiKey(env.DB, { accountId, name: "test" });
}

export async function mintToken(key: string, body?: unknown): Promise<{ jwt: string; expires_at: number }> {
  const response = await call("/tokens", {
    method: "POST",
    headers: { "Reactor-API-Key": key, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status !== 200) throw new Error(`mint failed: ${response.status} ${await response.text()}`);
  return response.json();
}

export async function errorCode(response: Response): Promise<string | undefined> {
  const body = (await response.json()) as { error?: { code?: string } };
  return body.error?.code;
}

export const bearer = (jwt: string) => ({ Authorization: `Bearer ${jwt}` });
