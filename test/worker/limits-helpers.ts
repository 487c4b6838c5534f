/** Helpers for the limits and metering tests: accounts of their own, admin overrides, the account's clock. */
import { accountLimits } from "../../src/objects.ts";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { call, mintToken, newApiKey } from "./helpers.ts";
import { advanceClock, clientHeaders, getJson, registerModel, type ClientAccount } from "./scripted.ts";

export const SECOND = 1000;
const ADMIN = { Authorization: "Bearer test-admin-token", "Content-Type": "application/json" };

/** An account no other test uses. */
export const freshAccount = (prefix = "lim") => `${prefix}-${crypto.randomUUID().slice(0, 8)}`;

/** A client token of a new API key of `account` (several keys per account share its limits). */
export async function clientOf(account: string, tokenBody?: unknown): Promise<ClientAccount> {
  const key = await newApiKey(account);
  return { jwt: (await mintToken(key.key, tokenBody)).jwt, account };
}

export const limitsStub = (account: string) => accountLimits(env, account);

/** Moves the account's limits object's test clock (its creation and mint windows). */
export const advanceAccountClock = (account: string, ms: number) => advanceClock(limitsStub(account), ms);

export async function setLimits(account: string, body: Record<string, number | null>): Promise<Response> {
  const response = await call(`/admin/accounts/${account}/limits`, { method: "PUT", headers: ADMIN, body: JSON.stringify(body) });
  expect(response.status).toBe(200);
  return response;
}

/** POST /sessions as the official client sends it, on a registered model; the raw response (refusals included). */
export async function postSession(client: ClientAccount, model: string): Promise<Response> {
  await registerModel(model);
  return call("/sessions", {
    method: "POST",
    headers: clientHeaders(client),
    body: JSON.stringify({ model: { name: model }, client_info: { sdk_version: "test", sdk_type: "js" } }),
  });
}

export async function sessionsInUse(client: ClientAccount): Promise<number> {
  const { status, body } = await getJson(client, "/v1/limits");
  expect(status).toBe(200);
  return body.sessions_in_use as number;
}

/** Asserts the 429 shape every limit answers with, and returns its retry_after. */
export async function expectRateLimited(response: Response): Promise<number> {
  expect(response.status).toBe(429);
  const body = (await response.json()) as { error: { code: string; recoverable: boolean; retry_after: number; message: string } };
  expect(body.error).toMatchObject({ code: "RATE_LIMITED", recoverable: true, retry_after: expect.any(Number) });
  expect(body.error.retry_after).toBeGreaterThan(0);
  expect(response.headers.get("Retry-After")).toBe(String(Math.ceil(body.error.retry_after)));
  return body.error.retry_after;
}

/**
 * Asserts the refusal of a creation or restart while the account has all its concurrent sessions: 429
 * CONCURRENCY_LIMIT, recoverable, and no retry_after or Retry-After (nobody knows when a session will end).
 */
export async function expectConcurrencyLimited(response: Response): Promise<void> {
  expect(response.status).toBe(429);
  const body = (await response.json()) as { error: Record<string, unknown> };
  expect(body.error).toMatchObject({ code: "CONCURRENCY_LIMIT", recoverable: true, message: expect.stringContaining("end one first") });
  expect(body.error).not.toHaveProperty("retry_after");
  expect(response.headers.get("Retry-After")).toBeNull();
}

export const del = (client: ClientAccount, sessionId: string) => getJson(client, `/sessions/${sessionId}`, { method: "DELETE" });
