/**
 * Limits that follow the token: scoped tokens (models.match, max_sessions) and the per-key mint rate.
 */
import { describe, expect, it } from "vitest";
import { call, errorCode, newApiKey } from "./helpers.ts";
import {
  advanceAccountClock,
  clientOf,
  del,
  expectConcurrencyLimited,
  expectRateLimited,
  freshAccount,
  postSession,
  SECOND,
  sessionsInUse,
  setLimits,
} from "./limits-helpers.ts";
import { freshModel, getJson, type ClientAccount } from "./scripted.ts";

const scoped = (constraints: { models?: string[]; maxSessions?: number }) => ({
  authorization_details: [
    {
      type: "session",
      ...(constraints.models && { resources: { models: { match: constraints.models } } }),
      ...(constraints.maxSessions !== undefined && { constraints: { max_sessions: constraints.maxSessions } }),
    },
  ],
});

describe("scoped tokens", () => {
  it("a model outside models.match is refused 403 MODEL_NOT_ALLOWED before any slot or creation is counted", async () => {
    const allowed = freshModel();
    const client = await clientOf(freshAccount(), scoped({ models: [allowed] }));
    const refused = await postSession(client, freshModel());
    expect(refused.status).toBe(403);
    expect(await errorCode(refused)).toBe("MODEL_NOT_ALLOWED");
    const { body } = await getJson(client, "/v1/limits");
    expect(body).toMatchObject({ sessions_in_use: 0, creations_last_minute: {} });
    expect((await postSession(client, allowed)).status).toBe(200);
  });

  it("max_sessions counts every session the token created, closed ones too", async () => {
    const account = freshAccount();
    const client = await clientOf(account, scoped({ maxSessions: 2 }));
    const model = freshModel();
    const created: string[] = [];
    for (let i = 0; i < 2; i++) {
      const response = await postSession(client, model);
      expect(response.status).toBe(200);
      created.push(((await response.json()) as { session_id: string }).session_id);
    }
    for (const id of created) await del(client, id);
    expect(await sessionsInUse(client)).toBe(0);

    const third = await postSession(client, model);
    expect(third.status).toBe(403);
    expect(await third.json()).toMatchObject({ error: { code: "TOKEN_SESSION_LIMIT", recoverable: false } });
    expect(third.headers.get("Retry-After")).toBeNull();

    // Another token of the same account has its own count; a token without max_sessions has none.
    const other = await clientOf(account, scoped({ maxSessions: 1 }));
    expect((await postSession(other, model)).status).toBe(200);
    expect((await postSession(await clientOf(account), model)).status).toBe(200);
  });

  it("a creation refused by the account's limits does not use up the token's max_sessions", async () => {
    const account = freshAccount();
    await setLimits(account, { concurrent_sessions: 1 });
    const model = freshModel();
    const holder = await clientOf(account);
    const held = (await (await postSession(holder, model)).json()) as { session_id: string };
    const client = await clientOf(account, scoped({ maxSessions: 1 }));
    await expectConcurrencyLimited(await postSession(client, model));
    await expectConcurrencyLimited(await postSession(client, model));
    await del(holder, held.session_id);
    expect((await postSession(client, model)).status).toBe(200);
  });

  it("the narrowest of several details wins: a model must match every list, the smallest cap applies", async () => {
    const [a, b] = [freshModel(), freshModel()];
    const client: ClientAccount = await clientOf(freshAccount(), {
      authorization_details: [
        { type: "session", resources: { models: { match: [a, b] } }, constraints: { max_sessions: 5 } },
        { type: "session", resources: { models: { match: [a] } }, constraints: { max_sessions: 1 } },
      ],
    });
    expect(await errorCode(await postSession(client, b))).toBe("MODEL_NOT_ALLOWED");
    expect((await postSession(client, a)).status).toBe(200);
    expect(await errorCode(await postSession(client, a))).toBe("TOKEN_SESSION_LIMIT");
  });
});

describe("token mints per API key", () => {
  const mint = (key: string) => call("/tokens", { method: "POST", headers: { "Reactor-API-Key": key } });

  it("past the key's rate: 429 with Retry-After; another key of the account is not affected; the window slides", async () => {
    const account = freshAccount();
    await setLimits(account, { token_mints_per_minute: 3 });
    const [key, other] = [await newApiKey(account), await newApiKey(account)];
    for (let i = 0; i < 3; i++) expect((await mint(key.key)).status).toBe(200);
    const retryAfter = await expectRateLimited(await mint(key.key));
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect((await mint(other.key)).status).toBe(200);

    await advanceAccountClock(account, 61 * SECOND);
    expect((await mint(key.key)).status).toBe(200);
  });

  it("a refused mint issues no token, and an unknown key is refused before any count", async () => {
    const account = freshAccount();
    await setLimits(account, { token_mints_per_minute: 1 });
    const key = await newApiKey(account);
    expect((await mint(key.key)).status).toBe(200);
    const refused = await mint(key.key);
    await expectRateLimited(refused.clone());
    expect(await refused.json()).not.toHaveProperty("jwt");
    expect(await errorCode(await mint(`rk_${"x".repeat(43)}`))).toBe("API_KEY_INVALID");
  });
});
