/**
 * The usage API over the ledger: GET /v1/usage (period, group_by model|day, per account) and
 * GET /v1/sessions/{id}/usage (one session, the open segment included), and the price table.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { writeSegments, type LedgerSegment } from "../../src/metering/ledger.ts";
import { parsePrices, usdPerSecond } from "../../src/metering/prices.ts";
import { createApp } from "../../src/app.ts";
import { declaredRoutes } from "../../src/http/route.ts";
import { call, errorCode } from "./helpers.ts";
import { clientOf, freshAccount } from "./limits-helpers.ts";
import { activeNativeSession, advanceClock, freshModel, getJson, ScriptedRuntime, sessionStub, type ClientAccount } from "./scripted.ts";

const DAY1 = Date.UTC(2026, 10, 2, 10, 0, 0); // 2026-11-02 10:00 UTC
const DAY2 = Date.UTC(2026, 10, 3, 23, 59, 0); // 2026-11-03 23:59 UTC
const s = (date: number) => Math.floor(date / 1000);

/** A ledger row; session ids are made unique per account (the ledger ignores a second write of the same key). */
function segment(accountId: string, sessionId: string, segmentNo: number, fields: Partial<LedgerSegment>): LedgerSegment {
  return {
    sessionId: sessionId.startsWith("ses_") ? sessionId : `${sessionId}-${accountId}`,
    segmentNo,
    accountId,
    apiKeyId: "key_test",
    model: "alpha",
    state: "ACTIVE",
    startedAt: DAY1,
    endedAt: DAY1 + 100_000,
    idleMs: 0,
    usdPerSecond: 0.001,
    ...fields,
  };
}

/** An account with a known ledger: two sessions of alpha on day 1 (one spans a drop), one of beta on day 2. */
async function seededAccount(): Promise<{ client: ClientAccount; account: string }> {
  const account = freshAccount("use");
  await writeSegments(env.DB, [
    segment(account, "a1", 1, { endedAt: DAY1 + 100_000, idleMs: 40_000 }),
    segment(account, "a1", 2, { state: "RECONNECTING", startedAt: DAY1 + 100_000, endedAt: DAY1 + 130_000 }),
    segment(account, "a1", 3, { startedAt: DAY1 + 130_000, endedAt: DAY1 + 150_000 }),
    segment(account, "a2", 1, { startedAt: DAY1 + 3_600_000, endedAt: DAY1 + 3_660_000 }),
    segment(account, "b1", 1, { model: "beta", startedAt: DAY2, endedAt: DAY2 + 200_000, usdPerSecond: 0.002 }),
  ]);
  await writeSegments(env.DB, [segment(freshAccount("other"), "x1", 1, { endedAt: DAY1 + 999_000 })]);
  return { client: await clientOf(account), account };
}

const period = `from=${s(DAY1) - 3600}&to=${s(DAY2) + 3600}`;

describe("GET /v1/usage", () => {
  it("groups by model: billed, active, idle and reconnecting seconds, sessions, cost in USD and credits", async () => {
    const { client, account } = await seededAccount();
    const { status, body } = await getJson(client, `/v1/usage?${period}&group_by=model`);
    expect(status).toBe(200);
    expect(body).toEqual({
      account,
      from: s(DAY1) - 3600,
      to: s(DAY2) + 3600,
      group_by: "model",
      groups: [
        {
          key: "alpha",
          sessions: 2,
          billed_seconds: 210,
          active_seconds: 140,
          idle_seconds: 40,
          reconnecting_seconds: 30,
          cost_usd: 0.21,
          cost_credits: 2100,
        },
        {
          key: "beta",
          sessions: 1,
          billed_seconds: 200,
          active_seconds: 200,
          idle_seconds: 0,
          reconnecting_seconds: 0,
          cost_usd: 0.4,
          cost_credits: 4000,
        },
      ],
      total: {
        sessions: 3,
        billed_seconds: 410,
        active_seconds: 340,
        idle_seconds: 40,
        reconnecting_seconds: 30,
        cost_usd: 0.61,
        cost_credits: 6100,
      },
    });
  });

  it("groups by UTC day, a segment counting on the day it started", async () => {
    const { client } = await seededAccount();
    const { body } = await getJson(client, `/v1/usage?${period}&group_by=day`);
    expect((body.groups as { key: string; billed_seconds: number }[]).map(({ key, billed_seconds }) => [key, billed_seconds])).toEqual([
      ["2026-11-02", 210],
      ["2026-11-03", 200],
    ]);
  });

  it("counts only segments that started in [from, to); ISO 8601 dates work too", async () => {
    const { client } = await seededAccount();
    const day1 = await getJson(client, "/v1/usage?from=2026-11-02&to=2026-11-03");
    expect(day1.body).toMatchObject({ from: s(Date.UTC(2026, 10, 2)), to: s(Date.UTC(2026, 10, 3)), total: { sessions: 2, billed_seconds: 210 } });
    const edge = await getJson(client, `/v1/usage?from=${s(DAY1) + 101}&to=${s(DAY2)}`); // after a1's first two segments, before b1
    expect(edge.body).toMatchObject({ total: { billed_seconds: 80, reconnecting_seconds: 0 } });
    const offset = await getJson(client, "/v1/usage?from=2026-11-03T00:00:00%2B01:00&to=2026-11-04T00:00:00Z");
    expect(offset.body).toMatchObject({ from: s(Date.UTC(2026, 10, 2, 23)), total: { billed_seconds: 200 } });
  });

  it("an account with no usage gets zeros, never another account's figures", async () => {
    await seededAccount();
    const stranger = await clientOf(freshAccount());
    const { body } = await getJson(stranger, `/v1/usage?${period}`);
    expect(body).toMatchObject({ groups: [], total: { sessions: 0, billed_seconds: 0, cost_usd: 0, cost_credits: 0 } });
  });

  it("defaults to the last 30 days, grouped by model", async () => {
    const client = await clientOf(freshAccount());
    const { body } = await getJson(client, "/v1/usage");
    expect(body.group_by).toBe("model");
    expect((body.to as number) - (body.from as number)).toBe(30 * 86_400);
  });

  it.each([
    ["group_by=hour", "group_by"],
    ["from=yesterday", "from"],
    ["to=2026-13-45", "to"],
    ["from=2026-11-03&to=2026-11-02", "before"],
    ["from=2026-11-02&to=2026-11-02", "before"],
    ["from=2020-01-01&to=2026-01-01", "366 days"],
    ["from=-5", "from"],
  ])("?%s is 400 INVALID_REQUEST", async (query, words) => {
    const client = await clientOf(freshAccount());
    const response = await call(`/v1/usage?${query}`, { headers: { Authorization: `Bearer ${client.jwt}` } });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("INVALID_REQUEST");
    expect(body.error.message).toContain(words);
  });

  it("needs a client token", async () => {
    expect(await errorCode(await call("/v1/usage"))).toBe("TOKEN_MISSING");
  });
});

describe("GET /v1/sessions/{id}/usage", () => {
  it("a live session: its open segment up to now, marked open", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId } = await activeNativeSession(model, runtime);
    await advanceClock(sessionStub(sessionId), 30_000);
    const { status, body } = await getJson(client, `/v1/sessions/${sessionId}/usage`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ session_id: sessionId, model, state: "ACTIVE", segments: [{ segment: 1, state: "ACTIVE", open: true }] });
    expect(Math.abs((body.billed_seconds as number) - 30)).toBeLessThanOrEqual(1);
  });

  it("another account's session, an unknown id and a malformed id are 404 SESSION_NOT_FOUND", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId } = await activeNativeSession(model, runtime);
    const stranger = await clientOf(freshAccount());
    for (const id of [sessionId, "ses_AAAAAAAAAAAAAAAAAAAAAA", "nope"]) {
      const { status, body } = await getJson(stranger, `/v1/sessions/${id}/usage`);
      expect(status, id).toBe(404);
      expect(body).toMatchObject({ error: { code: "SESSION_NOT_FOUND" } });
    }
  });

  it("a session known only to the ledger (its object's retention has passed) is read from the ledger", async () => {
    const client = await clientOf(freshAccount());
    const wellFormed = "ses_LedgerOnlyLedgerOnly00";
    await writeSegments(env.DB, [segment(client.account, wellFormed, 1, { endedAt: DAY1 + 12_345, usdPerSecond: 0.01 })]);
    const { body } = await getJson(client, `/v1/sessions/${wellFormed}/usage`);
    expect(body).toEqual({
      session_id: wellFormed,
      model: "alpha",
      segments: [
        { segment: 1, state: "ACTIVE", started_at: DAY1, ended_at: DAY1 + 12_345, billed_seconds: 12.345, idle_seconds: 0, usd_per_second: 0.01 },
      ],
      billed_seconds: 12.345,
      active_seconds: 12.345,
      idle_seconds: 0,
      reconnecting_seconds: 0,
      cost_usd: 0.12345,
      cost_credits: 1234.5,
    });
  });
});

describe("price table (PRICES_USD_PER_SECOND)", () => {
  it("prices named models, falls back to '*', and defaults '*' when the table leaves it out", () => {
    const table = parsePrices('{"demo": 0, "big": 0.01}');
    expect(usdPerSecond(table, "demo")).toBe(0);
    expect(usdPerSecond(table, "big")).toBe(0.01);
    expect(usdPerSecond(table, "other")).toBe(0.001);
    expect(usdPerSecond(parsePrices('{"*": 0.5}'), "other")).toBe(0.5);
    expect(usdPerSecond(parsePrices(""), "other")).toBe(0.001);
  });

  it.each(["not json", "[1, 2]", '{"demo": -1}', '{"demo": "0.1"}', "null"])("refuses %s as MISCONFIGURED", (source) => {
    expect(() => parsePrices(source)).toThrow(expect.objectContaining({ code: "MISCONFIGURED" }));
  });

  it("the gateway's own vars parse", () => {
    expect(usdPerSecond(parsePrices(env.PRICES_USD_PER_SECOND), "anything")).toBeGreaterThanOrEqual(0);
  });
});

it("the usage and limits routes are in the OpenAPI document", () => {
  const paths = declaredRoutes(createApp()).map((spec) => `${spec.method} ${spec.path}`);
  expect(paths).toEqual(
    expect.arrayContaining(["get /v1/usage", "get /v1/sessions/:id/usage", "get /v1/limits", "put /admin/accounts/:account/limits"]),
  );
});
