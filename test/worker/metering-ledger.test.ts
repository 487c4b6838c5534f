/**
 * Metering: billed seconds per session from the session's own transitions, with the objects' test clock
 * (TEST_CLOCK=1) standing in for time. Billed: ACTIVE (idle included) and RECONNECTING; not billed: waiting and
 * connecting. The D1 ledger gets each segment exactly once, across retries and evictions.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call } from "./helpers.ts";
import { clientOf, del, freshAccount, SECOND, setLimits } from "./limits-helpers.ts";
import {
  activeNativeSession,
  advanceClock,
  ANSWER,
  clientHeaders,
  command,
  commandStatus,
  createSession,
  freshModel,
  getJson,
  isStatus,
  negotiate,
  newClient,
  OFFER,
  openSignal,
  ScriptedRuntime,
  sessionStub,
  stateOf,
  type ClientAccount,
} from "./scripted.ts";

type LedgerRow = { segment_no: number; state: string; started_at: number; ended_at: number; idle_ms: number; usd_per_second: number; model: string };
type Usage = {
  segments: { segment: number; state: string; billed_seconds: number; idle_seconds: number; open?: boolean }[];
  billed_seconds: number;
  active_seconds: number;
  idle_seconds: number;
  reconnecting_seconds: number;
  cost_usd: number;
  cost_credits: number;
};

async function ledgerRows(sessionId: string): Promise<LedgerRow[]> {
  const { results } = await env.DB.prepare("SELECT * FROM usage_segments WHERE session_id = ? ORDER BY segment_no").bind(sessionId).all<LedgerRow>();
  return results;
}

/** Waits until the ledger has `count` segments of the session, and returns them. */
async function ledgerOf(sessionId: string, count: number): Promise<LedgerRow[]> {
  await expect.poll(async () => (await ledgerRows(sessionId)).length).toBe(count);
  return ledgerRows(sessionId);
}

async function usageOf(client: ClientAccount, sessionId: string): Promise<Usage> {
  const { status, body } = await getJson(client, `/v1/sessions/${sessionId}/usage`);
  expect(status).toBe(200);
  return body as unknown as Usage;
}

const seconds = (row: LedgerRow) => (row.ended_at - row.started_at) / 1000;
const advance = (sessionId: string, ms: number) => advanceClock(sessionStub(sessionId), ms);

describe("billed seconds", () => {
  it("waiting → ready → drop → reconnect → close: ACTIVE and RECONNECTING are billed, waiting and connecting are not", async () => {
    const model = freshModel();
    const client = await newClient();
    const { session_id: id } = await createSession(client, model); // queued: no runtime yet
    await advance(id, 20 * SECOND);
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { peer: runtimePeer } = await runtime.acceptAssignment();
    await advance(id, 20 * SECOND); // assigned, the client is connecting
    const signal = await openSignal(client, id);
    await negotiate(signal, runtimePeer);

    await advance(id, 100 * SECOND);
    await runtime.dropSession(id);
    await signal.next(isStatus("RECONNECTING"));
    await advance(id, 10 * SECOND);
    await runtime.openSession(id);
    await signal.next(isStatus("ACTIVE"));
    await advance(id, 50 * SECOND);
    await del(client, id);

    const rows = await ledgerOf(id, 3);
    expect(rows.map((row) => row.state)).toEqual(["ACTIVE", "RECONNECTING", "ACTIVE"]);
    expect(seconds(rows[0]!)).toBeCloseTo(100, 0);
    expect(seconds(rows[1]!)).toBeCloseTo(10, 0);
    expect(seconds(rows[2]!)).toBeCloseTo(50, 0);

    const usage = await usageOf(client, id);
    expect(Math.abs(usage.billed_seconds - 160)).toBeLessThanOrEqual(1);
    expect(Math.abs(usage.reconnecting_seconds - 10)).toBeLessThanOrEqual(1);
    // No command at all: idle from 60 s after ready (40 s); the resumed 50 s stay under the idle span.
    expect(Math.abs(usage.idle_seconds - 40)).toBeLessThanOrEqual(1);
    expect(Math.abs(usage.active_seconds - 110)).toBeLessThanOrEqual(1);
    expect(usage.billed_seconds).toBeCloseTo(usage.active_seconds + usage.idle_seconds + usage.reconnecting_seconds, 3);
    // Default price: 0.001 USD per second; 10,000 credits per USD.
    expect(usage.cost_usd).toBeCloseTo(usage.billed_seconds * 0.001, 6);
    expect(usage.cost_credits).toBeCloseTo(usage.cost_usd * 10_000, 2);
    expect(usage.segments.every((segment) => !segment.open)).toBe(true);
  });

  it("a session that never became ready bills nothing", async () => {
    const client = await newClient();
    const { session_id: id } = await createSession(client, freshModel());
    await advance(id, 601 * SECOND); // no GPU in time
    await runDurableObjectAlarm(sessionStub(id));
    expect(await stateOf(client, id)).toBe("INACTIVE");
    const usage = await usageOf(client, id);
    expect(usage).toMatchObject({ segments: [], billed_seconds: 0, cost_usd: 0 });
    expect(await ledgerRows(id)).toEqual([]);
  });

  it("grace expired with the client away: exactly 30 s of grace are billed, however late the alarm", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId: id, signal } = await activeNativeSession(model, runtime);
    await advance(id, 10 * SECOND);
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(client, id)).toBe("RECONNECTING");
    await advance(id, 45 * SECOND); // the alarm runs 15 s after the grace deadline
    await runDurableObjectAlarm(sessionStub(id));
    expect(await stateOf(client, id)).toBe("CLOSED");

    const rows = await ledgerOf(id, 2);
    expect(rows[1]).toMatchObject({ state: "RECONNECTING" });
    expect(rows[1]!.ended_at - rows[1]!.started_at).toBe(30_000);
  });

  it("runtime lost past grace bills 30 s; after a restart, waiting is not billed and segments carry on numbering", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId: id, signal } = await activeNativeSession(model, runtime);
    await advance(id, 5 * SECOND);
    await runtime.dropSession(id);
    await signal.next(isStatus("RECONNECTING"));
    await advance(id, 31 * SECOND);
    await runDurableObjectAlarm(sessionStub(id));
    expect(await stateOf(client, id)).toBe("INACTIVE");

    await getJson(client, `/sessions/${id}`, { method: "PUT" });
    await advance(id, 40 * SECOND); // waiting for a GPU again: not billed
    const { peer } = await runtime.acceptAssignment(); // its slot is free again
    const again = await openSignal(client, id);
    await negotiate(again, peer, 2);
    await advance(id, 20 * SECOND);
    await del(client, id);

    const rows = await ledgerOf(id, 3);
    expect(rows.map((row) => [row.segment_no, row.state])).toEqual([
      [1, "ACTIVE"],
      [2, "RECONNECTING"],
      [3, "ACTIVE"],
    ]);
    expect(rows[1]!.ended_at - rows[1]!.started_at).toBe(30_000);
    expect(seconds(rows[2]!)).toBeCloseTo(20, 0);
  });

  it("the maximum length bills exactly up to it", async () => {
    const account = freshAccount();
    await setLimits(account, { max_session_seconds: 90 });
    const client = await clientOf(account);
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId: id } = await activeNativeSession(model, runtime, client);
    await advance(id, 200 * SECOND);
    await runDurableObjectAlarm(sessionStub(id));
    const [row] = await ledgerOf(id, 1);
    expect(row!.ended_at - row!.started_at).toBe(90_000);
  });
});

describe("idle time (reported, still billed)", () => {
  it("counts ACTIVE time past METER_IDLE_SECONDS (60) since the last command", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId: id, signal } = await activeNativeSession(model, runtime);
    await advance(id, 30 * SECOND);
    signal.send(command(1));
    await signal.next(commandStatus(1, "delivered"));
    await advance(id, 90 * SECOND); // idle from 60 s after the command: 30 s
    await del(client, id);
    await ledgerOf(id, 1);
    const usage = await usageOf(client, id);
    expect(Math.abs(usage.billed_seconds - 120)).toBeLessThanOrEqual(1);
    expect(Math.abs(usage.idle_seconds - 30)).toBeLessThanOrEqual(1);
    expect(Math.abs(usage.active_seconds - 90)).toBeLessThanOrEqual(1);
  });

  it("is never counted for the official client, whose commands go peer to peer", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const { session_id: id } = await createSession(client, model);
    const { peer } = await runtime.acceptAssignment();
    await call(`/sessions/${id}/transport/webrtc/sdp_params`, {
      method: "POST",
      headers: clientHeaders(client),
      body: JSON.stringify({ sdp_offer: OFFER }),
    });
    await peer.next("offer");
    peer.send({ type: "answer", generation: 1, sdp: ANSWER });
    peer.send({ type: "peer_state", generation: 1, state: "connected" });
    await expect.poll(() => stateOf(client, id)).toBe("ACTIVE");
    await advance(id, 200 * SECOND);
    await del(client, id);
    await ledgerOf(id, 1);
    const usage = await usageOf(client, id);
    expect(usage.idle_seconds).toBe(0);
    expect(Math.abs(usage.active_seconds - 200)).toBeLessThanOrEqual(1);
  });
});

describe("exactly once in the ledger", () => {
  /** Puts a closed segment back among the session's pending ones, due for the ledger now (as after an eviction). */
  async function pendAgain(sessionId: string, row: LedgerRow): Promise<void> {
    await runInDurableObject(sessionStub(sessionId), (_relay, state: DurableObjectState) => {
      state.storage.sql.exec(
        "INSERT OR REPLACE INTO pending_segments (segment_no, state, started_at, ended_at, idle_ms) VALUES (?, ?, ?, ?, ?)",
        row.segment_no,
        row.state,
        row.started_at,
        row.ended_at,
        row.idle_ms,
      );
      const record = state.storage.kv.get<{ deadlines: Record<string, number> }>("session")!;
      record.deadlines.ledger = 0;
      state.storage.kv.put("session", record);
    });
    await evictDurableObject(sessionStub(sessionId));
  }

  const pendingCount = (sessionId: string) =>
    runInDurableObject(
      sessionStub(sessionId),
      (_relay, state: DurableObjectState) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pending_segments").one().n,
    );

  async function closedSession() {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId } = await activeNativeSession(model, runtime);
    await advance(sessionId, 40 * SECOND);
    await del(client, sessionId);
    const [row] = await ledgerOf(sessionId, 1);
    return { client, sessionId, row: row! };
  }

  it("segments closed mid-session reach the ledger in one batch, 30 s after the first, not one write per drop", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId: id, signal } = await activeNativeSession(model, runtime);
    await advance(id, 10 * SECOND);
    for (let flap = 0; flap < 2; flap++) {
      await runtime.dropSession(id);
      await signal.next(isStatus("RECONNECTING"));
      await advance(id, 2 * SECOND);
      await runtime.openSession(id);
      await signal.next(isStatus("ACTIVE"));
      await advance(id, 5 * SECOND);
    }
    // ACTIVE, RECONNECTING, ACTIVE, RECONNECTING closed: pending, and an alarm before the batch is due writes nothing.
    expect(await pendingCount(id)).toBe(4);
    await runDurableObjectAlarm(sessionStub(id));
    expect(await ledgerRows(id)).toEqual([]);
    await advance(id, 30 * SECOND);
    await runDurableObjectAlarm(sessionStub(id));
    expect((await ledgerRows(id)).map((row) => row.state)).toEqual(["ACTIVE", "RECONNECTING", "ACTIVE", "RECONNECTING"]);
    expect(await pendingCount(id)).toBe(0);
    await del(client, id);
    expect((await ledgerOf(id, 5)).map((row) => row.segment_no)).toEqual([1, 2, 3, 4, 5]);
  });

  it("the object evicted mid-session loses nothing: the open segment lives in its record", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId: id } = await activeNativeSession(model, runtime);
    await advance(id, 40 * SECOND); // moves the clock, and evicts the object
    const live = await usageOf(client, id);
    expect(live.segments).toEqual([expect.objectContaining({ segment: 1, state: "ACTIVE", open: true })]);
    expect(Math.abs(live.billed_seconds - 40)).toBeLessThanOrEqual(1);
    await advance(id, 20 * SECOND);
    await del(client, id);
    const [row] = await ledgerOf(id, 1);
    expect(seconds(row!)).toBeCloseTo(60, 0);
  });

  it("a segment written again (its pending row outlived the ledger write, then an eviction) is not doubled", async () => {
    const { client, sessionId, row } = await closedSession();
    const before = await usageOf(client, sessionId);
    await pendAgain(sessionId, { ...row, ended_at: row.ended_at + 5000 }); // a different copy: the first write wins
    expect(await runDurableObjectAlarm(sessionStub(sessionId))).toBe(true);
    await runDurableObjectAlarm(sessionStub(sessionId)); // and an alarm retried once more
    expect(await ledgerRows(sessionId)).toEqual([row]);
    expect(await pendingCount(sessionId)).toBe(0);
    expect(await usageOf(client, sessionId)).toEqual(before);
  });

  it("a segment whose ledger write was lost to an eviction is written by the alarm, once", async () => {
    const { sessionId, row } = await closedSession();
    await env.DB.prepare("DELETE FROM usage_segments WHERE session_id = ?").bind(sessionId).run();
    await pendAgain(sessionId, row);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await ledgerOf(sessionId, 1)).toEqual([row]);
    expect(await pendingCount(sessionId)).toBe(0);
  });

  it("the session's storage is not purged while a segment is still pending", async () => {
    const { client, sessionId, row } = await closedSession();
    await env.DB.prepare("DELETE FROM usage_segments WHERE session_id = ?").bind(sessionId).run();
    await pendAgain(sessionId, row);
    await advance(sessionId, 25 * 3600 * SECOND); // past retention: purge and ledger are both due
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await ledgerOf(sessionId, 1)).toEqual([row]);
    // Purged once the ledger has it; the usage stays readable from the ledger.
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect((await getJson(client, `/sessions/${sessionId}/info`)).status).toBe(404);
    expect((await usageOf(client, sessionId)).segments).toHaveLength(1);
  });
});
