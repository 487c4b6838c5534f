/**
 * Session limits of an account: concurrent sessions (waiting and connecting ones included, pooled across API
 * keys, exact under concurrency, released whatever way a session ends), creations per minute per model, restart,
 * per-account overrides, and the safety net for slots whose session never came to exist. Time is the objects' test
 * clock; no test waits for real time to pass.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { AccountLimits } from "../../durable-objects/limits/account-limits.ts";
import { call, errorCode } from "./helpers.ts";
import {
  advanceAccountClock,
  clientOf,
  del,
  expectConcurrencyLimited,
  expectRateLimited,
  freshAccount,
  limitsStub,
  postSession,
  SECOND,
  sessionsInUse,
  setLimits,
} from "./limits-helpers.ts";
import {
  activeNativeSession,
  advanceClock,
  createSession,
  freshModel,
  getJson,
  isStatus,
  ScriptedRuntime,
  sessionStub,
  stateOf,
  type ClientAccount,
} from "./scripted.ts";

const GRACE = 30 * SECOND;

async function fill(client: ClientAccount, model: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push((await createSession(client, model)).session_id);
  return ids;
}

describe("concurrent sessions per account (default 5)", () => {
  it("the 6th is refused 429 CONCURRENCY_LIMIT, recoverable, with no Retry-After; it succeeds once one has ended", async () => {
    const client = await clientOf(freshAccount());
    const model = freshModel();
    const [first] = await fill(client, model, 5); // no runtime: all five are WAITING

    const refused = await postSession(client, model);
    await expectConcurrencyLimited(refused);
    expect(await sessionsInUse(client)).toBe(5);

    await del(client, first!);
    expect(await sessionsInUse(client)).toBe(4);
    expect((await postSession(client, model)).status).toBe(200);
  });

  it("waiting and connecting sessions count: one assigned and waiting for its client, four queued", async () => {
    const client = await clientOf(freshAccount());
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    await createSession(client, model);
    await runtime.acceptAssignment(); // assigned: the client is connecting
    await fill(client, model, 4); // queued behind it
    await expectConcurrencyLimited(await postSession(client, model));
  });

  it("is pooled across the account's API keys, and does not touch other accounts", async () => {
    const account = freshAccount();
    const [one, two] = [await clientOf(account), await clientOf(account)];
    const model = freshModel();
    await fill(one, model, 3);
    await fill(two, model, 2);
    await expectConcurrencyLimited(await postSession(one, model));
    await expectConcurrencyLimited(await postSession(two, model));
    const stranger = await clientOf(freshAccount());
    expect((await postSession(stranger, model)).status).toBe(200);
  });

  it("two concurrent requests for the last slot: exactly one wins", async () => {
    const client = await clientOf(freshAccount());
    const model = freshModel();
    await fill(client, model, 4);
    const statuses = (await Promise.all([postSession(client, model), postSession(client, model)])).map((r) => r.status);
    expect(statuses.sort()).toEqual([200, 429]);
    expect(await sessionsInUse(client)).toBe(5);
  });

  it("twelve concurrent requests on an empty account: exactly five win", async () => {
    const client = await clientOf(freshAccount());
    const model = freshModel();
    const responses = await Promise.all(Array.from({ length: 12 }, () => postSession(client, model)));
    expect(responses.filter((r) => r.status === 200)).toHaveLength(5);
    expect(responses.filter((r) => r.status === 429)).toHaveLength(7);
    expect(await sessionsInUse(client)).toBe(5);
  });
});

describe("a slot is released whatever way the session ends", () => {
  /** An account of one session slot, so a refused and then accepted creation proves the release. */
  async function oneSlotAccount(): Promise<ClientAccount> {
    const account = freshAccount();
    await setLimits(account, { concurrent_sessions: 1 });
    return clientOf(account);
  }

  async function expectReleased(client: ClientAccount, model: string): Promise<void> {
    await expect.poll(() => sessionsInUse(client)).toBe(0);
    expect((await postSession(client, model)).status).toBe(200);
  }

  it("closed by the client (DELETE)", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const { session_id } = await createSession(client, model);
    await expectConcurrencyLimited(await postSession(client, model));
    await del(client, session_id);
    await expectReleased(client, model);
  });

  it("closed by the native client's close frame", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { signal } = await activeNativeSession(model, runtime, client);
    signal.send({ type: "close", reason: "done" });
    await signal.waitClosed();
    await expectReleased(client, model);
  });

  it("grace expired with the client away (CLOSED client_reconnect_timeout)", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal } = await activeNativeSession(model, runtime, client);
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(client, sessionId)).toBe("RECONNECTING");
    await advanceClock(sessionStub(sessionId), GRACE + SECOND);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await stateOf(client, sessionId)).toBe("CLOSED");
    await expectReleased(client, model);
  });

  it("runtime lost past grace (INACTIVE runtime_lost)", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal } = await activeNativeSession(model, runtime, client);
    await runtime.dropSession(sessionId);
    await signal.next(isStatus("RECONNECTING"));
    await advanceClock(sessionStub(sessionId), GRACE + SECOND);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await stateOf(client, sessionId)).toBe("INACTIVE");
    await expectReleased(client, model);
  });

  it("the runtime released it", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, runtimePeer } = await activeNativeSession(model, runtime, client);
    runtimePeer.send({ type: "release", reason: "model crashed" });
    await expect.poll(() => stateOf(client, sessionId)).toBe("INACTIVE");
    await expectReleased(client, model);
  });

  it("no GPU in time (INACTIVE after the queue wait)", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const { session_id } = await createSession(client, model);
    await advanceClock(sessionStub(session_id), 601 * SECOND);
    await runDurableObjectAlarm(sessionStub(session_id));
    expect(await stateOf(client, session_id)).toBe("INACTIVE");
    await expectReleased(client, model);
  });

  it("maximum length reached (CLOSED max_duration)", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId } = await activeNativeSession(model, runtime, client);
    await advanceClock(sessionStub(sessionId), 1200 * SECOND);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await stateOf(client, sessionId)).toBe("CLOSED");
    await expectReleased(client, model);
  });

  it("a release that failed is retried by the session's alarm, also after an eviction", async () => {
    const client = await oneSlotAccount();
    const model = freshModel();
    const { session_id } = await createSession(client, model);
    await del(client, session_id);
    // As if the release had never been confirmed: the slot is back, and the session's retry deadline is due.
    await runInDurableObject(limitsStub(client.account), (limits: AccountLimits) =>
      limits.acquire({ accountId: client.account, sessionId: session_id, model, epoch: 0 }),
    );
    expect(await sessionsInUse(client)).toBe(1);
    await runInDurableObject(sessionStub(session_id), (_relay, state: DurableObjectState) => {
      const record = state.storage.kv.get<{ deadlines: Record<string, number> }>("session")!;
      record.deadlines.accountRelease = 0;
      state.storage.kv.put("session", record);
    });
    await advanceClock(sessionStub(session_id), SECOND); // evicts it too
    await runDurableObjectAlarm(sessionStub(session_id));
    await expectReleased(client, model);
  });
});

describe("restart (PUT /sessions/{id})", () => {
  async function inactiveSession(client: ClientAccount, model: string): Promise<string> {
    const { session_id } = await createSession(client, model);
    await advanceClock(sessionStub(session_id), 601 * SECOND); // no GPU in time: INACTIVE, slot released
    await runDurableObjectAlarm(sessionStub(session_id));
    expect(await stateOf(client, session_id)).toBe("INACTIVE");
    return session_id;
  }

  it("takes a slot again: refused 429 while the account is full, restarted once a slot is free", async () => {
    const account = freshAccount();
    await setLimits(account, { concurrent_sessions: 1 });
    const client = await clientOf(account);
    const model = freshModel();
    const sessionId = await inactiveSession(client, model);
    const other = await createSession(client, model);

    const refused = await getJson(client, `/sessions/${sessionId}`, { method: "PUT" });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: { code: "CONCURRENCY_LIMIT", recoverable: true } });
    expect(refused.body.error).not.toHaveProperty("retry_after");
    expect(await stateOf(client, sessionId)).toBe("INACTIVE");

    await del(client, other.session_id);
    const restarted = await getJson(client, `/sessions/${sessionId}`, { method: "PUT" });
    expect(restarted.body).toMatchObject({ state: "WAITING" });
    expect(await sessionsInUse(client)).toBe(1);
  });

  it("does not count as a creation, and a late release of the earlier run does not free the new run's slot", async () => {
    const account = freshAccount();
    await setLimits(account, { concurrent_sessions: 1 });
    const client = await clientOf(account);
    const model = freshModel();
    const sessionId = await inactiveSession(client, model);
    await getJson(client, `/sessions/${sessionId}`, { method: "PUT" });
    await limitsStub(account).release(sessionId, 0); // a retried release of run 0, arriving late
    expect(await sessionsInUse(client)).toBe(1);
    await expectConcurrencyLimited(await postSession(client, model));
    // Ending the restarted run frees it.
    await del(client, sessionId);
    expect(await sessionsInUse(client)).toBe(0);
  });
});

describe("session creations per minute per model (default 50)", () => {
  it("a burst of 60 in a minute: the last 10 are refused; another model is not; the window slides", async () => {
    const account = freshAccount();
    await setLimits(account, { concurrent_sessions: 1000 }); // only the creation rate limits here
    const client = await clientOf(account);
    const model = freshModel();
    const statuses: number[] = [];
    let retryAfter = 0;
    for (let i = 0; i < 60; i++) {
      const response = await postSession(client, model);
      statuses.push(response.status);
      if (response.status === 429) retryAfter = await expectRateLimited(response);
      else await response.body?.cancel();
    }
    expect(statuses.slice(0, 50).every((status) => status === 200)).toBe(true);
    expect(statuses.slice(50)).toEqual(Array(10).fill(429));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);

    expect((await postSession(client, freshModel())).status).toBe(200);

    await advanceAccountClock(account, 61 * SECOND);
    expect((await postSession(client, model)).status).toBe(200);
  });

  it("refused creations do not count: one more slides in exactly when the oldest creation leaves the window", async () => {
    const account = freshAccount();
    await setLimits(account, { concurrent_sessions: 1000, session_creations_per_minute: 3 });
    const client = await clientOf(account);
    const model = freshModel();
    expect((await postSession(client, model)).status).toBe(200); // t = 0
    await advanceAccountClock(account, 20 * SECOND);
    for (let i = 0; i < 2; i++) expect((await postSession(client, model)).status).toBe(200); // t = 20 s
    for (let i = 0; i < 10; i++) await expectRateLimited(await postSession(client, model));
    const retryAfter = await expectRateLimited(await postSession(client, model));
    expect(retryAfter).toBeGreaterThanOrEqual(39); // the creation at t = 0 leaves at t = 60 s
    expect(retryAfter).toBeLessThanOrEqual(40);

    await advanceAccountClock(account, 41 * SECOND); // t = 61 s
    expect((await postSession(client, model)).status).toBe(200);
    const next = await expectRateLimited(await postSession(client, model)); // the two of t = 20 s are still in
    expect(next).toBeLessThanOrEqual(20);
  });
});

describe("session creations per minute across the account (default 100)", () => {
  it("spread over 101 models (one creation each), the 101st is refused 429 RATE_LIMITED with Retry-After", async () => {
    const account = freshAccount();
    await setLimits(account, { concurrent_sessions: 1000 }); // only the creation rate limits here
    const client = await clientOf(account);
    expect((await getJson(client, "/v1/limits")).body).toMatchObject({ limits: { account_session_creations_per_minute: 100 } });
    for (let i = 0; i < 100; i++) {
      const response = await postSession(client, freshModel("spread"));
      expect(response.status, `creation ${i + 1}`).toBe(200);
      await response.body?.cancel();
    }
    const refused = postSession(client, freshModel("spread"));
    const retryAfter = await expectRateLimited((await refused).clone());
    expect(((await (await refused).json()) as { error: { message: string } }).error.message).toContain("100 sessions per minute across all models");
    expect(retryAfter).toBeLessThanOrEqual(60);

    await advanceAccountClock(account, 61 * SECOND);
    expect((await postSession(client, freshModel("spread"))).status).toBe(200);
  });

  it("has its own override, counted in the same step as the per-model window", async () => {
    const account = freshAccount();
    const set = await setLimits(account, { concurrent_sessions: 1000, account_session_creations_per_minute: 3 });
    expect(await set.json()).toMatchObject({
      limits: { account_session_creations_per_minute: 3, session_creations_per_minute: 50 },
      overrides: { account_session_creations_per_minute: 3, session_creations_per_minute: null },
    });
    const client = await clientOf(account);
    const [a, b] = [freshModel("a"), freshModel("b")];
    // Concurrent creations on two models: exactly three are taken, whatever the interleaving.
    const statuses = await Promise.all([a, b, a, b, a, b].map(async (model) => (await postSession(client, model)).status));
    expect(statuses.filter((status) => status === 200)).toHaveLength(3);
    expect(statuses.filter((status) => status === 429)).toHaveLength(3);
    expect((await getJson(client, "/v1/limits")).body).toMatchObject({ sessions_in_use: 3 });

    await setLimits(account, { account_session_creations_per_minute: null });
    expect((await postSession(client, freshModel("c"))).status).toBe(200);
  });
});

describe("per-account overrides (D1 account_limits)", () => {
  it("apply at once, and null restores the default", async () => {
    const account = freshAccount();
    const client = await clientOf(account);
    const model = freshModel();
    const set = await setLimits(account, { concurrent_sessions: 2 });
    expect(await set.json()).toMatchObject({
      account,
      limits: { concurrent_sessions: 2, session_creations_per_minute: 50, max_session_seconds: 1200 },
      overrides: { concurrent_sessions: 2, session_creations_per_minute: null },
    });
    await fill(client, model, 2);
    await expectConcurrencyLimited(await postSession(client, model));
    expect((await getJson(client, "/v1/limits")).body).toMatchObject({ limits: { concurrent_sessions: 2 }, sessions_in_use: 2 });

    await setLimits(account, { concurrent_sessions: null });
    expect((await postSession(client, model)).status).toBe(200);
  });

  it("the account's maximum session length ends its sessions", async () => {
    const account = freshAccount();
    await setLimits(account, { max_session_seconds: 90 });
    const client = await clientOf(account);
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal } = await activeNativeSession(model, runtime, client);
    await advanceClock(sessionStub(sessionId), 90 * SECOND);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await signal.next(isStatus("CLOSED"))).toMatchObject({ reason: "max_duration" });
  });

  it("a token's max_session_duration_seconds ends its sessions sooner than the account's limit, restarts included", async () => {
    const account = freshAccount();
    await setLimits(account, { max_session_seconds: 600 });
    const client = await clientOf(account, {
      authorization_details: [{ type: "session", constraints: { max_session_duration_seconds: 90 } }],
    });
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 2).connect();
    const { sessionId, signal } = await activeNativeSession(model, runtime, client);
    await advanceClock(sessionStub(sessionId), 89 * SECOND);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    await advanceClock(sessionStub(sessionId), 1 * SECOND);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await signal.next(isStatus("CLOSED"))).toMatchObject({ reason: "max_duration" });

    // A restarted session keeps the token's cap, though the restart reads the account's limit again.
    const { session_id: waiting } = await createSession(client, freshModel("unserved"));
    await advanceClock(sessionStub(waiting), 601 * SECOND);
    await runDurableObjectAlarm(sessionStub(waiting));
    expect(await stateOf(client, waiting)).toBe("INACTIVE");
    await getJson(client, `/sessions/${waiting}`, { method: "PUT" });
    const record = await runInDurableObject(
      sessionStub(waiting),
      (_relay, state: DurableObjectState) => state.storage.kv.get<{ maxDurationMs: number }>("session")!,
    );
    expect(record.maxDurationMs).toBe(90 * SECOND);
  });

  it("refuses bad values and unknown fields, and needs the admin token", async () => {
    const account = freshAccount();
    const put = (body: unknown, token = "test-admin-token") =>
      call(`/admin/accounts/${account}/limits`, {
        method: "PUT",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    for (const body of [{ concurrent_sessions: -1 }, { concurrent_sessions: 1.5 }, { max_session_seconds: 0 }, { concurrent_sessions: "5" }]) {
      const response = await put(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(await errorCode(response)).toBe("INVALID_REQUEST");
    }
    const unknown = await put({ burst: 3, concurrent_sessions: 2 });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()) as unknown).toMatchObject({ error: { code: "UNKNOWN_FIELD", message: expect.stringContaining('"burst"') } });
    expect(
      (await (await call(`/admin/accounts/${account}/limits`, { headers: { Authorization: "Bearer test-admin-token" } })).json()) as unknown,
    ).toMatchObject({
      overrides: { concurrent_sessions: null }, // nothing of a refused body is applied
    });
    expect(await errorCode(await put({ concurrent_sessions: 3 }, "wrong"))).toBe("ADMIN_UNAUTHORIZED");
    const badAccount = await call("/admin/accounts/Not%20An%20Account/limits", { headers: { Authorization: "Bearer test-admin-token" } });
    expect(badAccount.status).toBe(400);
  });
});

describe("slot audit (the safety net)", () => {
  it("frees a slot whose session never came to exist, and keeps the slots of live sessions", async () => {
    const account = freshAccount();
    const client = await clientOf(account);
    const model = freshModel();
    const live = await createSession(client, model);
    // A creation whose session object was never created (the request failed after taking the slot).
    const ghost = "ses_ghostghostghostghost00";
    await limitsStub(account).acquire({ accountId: account, sessionId: ghost, model, epoch: 0 });
    expect(await sessionsInUse(client)).toBe(2);

    await advanceAccountClock(account, 121 * SECOND);
    await runDurableObjectAlarm(limitsStub(account));
    const { body } = await getJson(client, "/v1/limits");
    expect(body.sessions_in_use).toBe(1);
    const status = await limitsStub(account).status(account);
    expect(status.sessions.map((slot) => slot.session_id)).toEqual([live.session_id]);
  });
});

it("GET /v1/limits is per account and needs a token", async () => {
  const client = await clientOf(freshAccount());
  expect(await errorCode(await call("/v1/limits"))).toBe("TOKEN_MISSING");
  const { body } = await getJson(client, "/v1/limits");
  expect(body).toEqual({
    account: client.account,
    limits: {
      concurrent_sessions: 5,
      session_creations_per_minute: 50,
      account_session_creations_per_minute: 100,
      token_mints_per_minute: 120,
      turn_credentials_per_minute: 60,
      max_session_seconds: 1200,
    },
    sessions_in_use: 0,
    creations_last_minute: {},
  });
});
