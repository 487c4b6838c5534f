/**
 * Fault injection inside workerd, against the real objects, D1 and R2. Time is the objects' test clock
 * (TEST_CLOCK=1, moved with `advanceClock`); deadlines fire through `runDurableObjectAlarm`.
 *
 * What every test checks, besides its own story: no command lost or duplicated (the runtime gets each seq once, in
 * order), no slot leaked (the model's pool and the account's limits object hold nothing for an ended session), no
 * billing segment lost or doubled (the ledger numbers them 1, 2, 3… back to back, each span once), grace ends at
 * 30 ± 1 s by the test clock, and every client is told why (a status with a reason, and the socket's close reason).
 *
 * Already proven elsewhere and not repeated: a runtime dropping mid-offer and coming back, also across an eviction,
 * alarms early/twice/late for the maximum length and the queue wait, eviction while WAITING or RECONNECTING, the pool
 * evicted while sessions wait (test/worker/session-faults.test.ts); a ledger write lost to an eviction, written twice,
 * or still pending at purge time (metering-ledger.test.ts); a failed account-slot release retried
 * (limits-sessions.test.ts); messages exactly once across evictions (session-messages.test.ts). The redeploy of a
 * whole `wrangler dev` gateway is test/node/redeploy.test.ts.
 *
 * One file over 500 lines on purpose: its tests share the table of session states (STATES: how to reach each one,
 * how to finish it cleanly) and the invariants checked after each story; the faults are the columns of that table.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AccountLimits } from "../../durable-objects/limits/account-limits.ts";
import type { SessionRelay } from "../../durable-objects/session/session-relay.ts";
import { createApp } from "../../src/app.ts";
import { call, errorCode, POLL } from "./helpers.ts";
import { failingBucket, failWrites } from "./faults.ts";
import { accountSlots, ledgerRows, poolStore, sessionStore, type LedgerRow } from "./invariants.ts";
import { clientOf, del, freshAccount, limitsStub, SECOND } from "./limits-helpers.ts";
import {
  activeNativeSession,
  advanceClock,
  ANSWER,
  command,
  commandSeqs,
  commandStatus,
  createSession,
  freshModel,
  getJson,
  isStatus,
  negotiate,
  OFFER,
  openSignal,
  poolStub,
  registerModel,
  ScriptedRuntime,
  sessionStub,
  stateOf,
  type ClientAccount,
  type Frame,
  type Peer,
} from "./scripted.ts";
import { createUpload, pattern, PNG, put, storedKeys } from "./upload-helpers.ts";

const GRACE = 30 * SECOND;
const fireAlarm = (sessionId: string) => runDurableObjectAlarm(sessionStub(sessionId));

// ── Invariants ─────────────────────────────────────────────────────────────────────────────────────────────────

/** The session holds no GPU slot or queue place at its pool, and no session slot at its account. */
async function expectNoSlotLeaked(sessionId: string, model: string, account: string): Promise<void> {
  await expect.poll(() => accountSlots(account), POLL).not.toContain(sessionId);
  const pool = await poolStore(model);
  expect(pool.assignments.map((row) => row.session_id)).not.toContain(sessionId);
  expect(pool.queue).not.toContain(sessionId);
}

/**
 * The ledger's segments of a session: numbered 1…n without gaps, ACTIVE first, ACTIVE and RECONNECTING taking turns,
 * each starting where the previous one ended (nothing lost between them, nothing counted twice).
 */
async function expectLedgerWellFormed(sessionId: string, count: number): Promise<LedgerRow[]> {
  await expect.poll(async () => (await ledgerRows(sessionId)).length, POLL).toBe(count);
  const rows = await ledgerRows(sessionId);
  rows.forEach((row, i) => {
    expect(row.segment_no).toBe(i + 1);
    expect(row.ended_at).toBeGreaterThanOrEqual(row.started_at);
    if (i > 0 && rows[i - 1]!.state === "RECONNECTING") expect(row.state).toBe("ACTIVE");
  });
  expect((await sessionStore(sessionId)).pendingSegments).toBe(0);
  return rows;
}

/** The client is told the end and why: a status with the reason, then the socket closes with it. */
async function expectToldEnd(signal: Peer, state: string, reason: string): Promise<void> {
  expect(await signal.next(isStatus(state))).toMatchObject({ reason });
  expect(await signal.waitClosed()).toEqual({ code: 1000, reason });
}

async function evictAll(sessionId: string, model: string, account: string, webSockets: "hibernate" | "close" = "hibernate"): Promise<void> {
  for (const stub of [sessionStub(sessionId), poolStub(model), limitsStub(account)]) {
    await runInDurableObject(stub, () => undefined); // running, so there is something to evict
    await evictDurableObject(stub, { webSockets });
  }
}

/** The stored facts an eviction must not change. */
async function stored(sessionId: string, model: string, account: string) {
  const { record, negotiation, commands, messages } = await sessionStore(sessionId);
  return { record, negotiation, commands, messages, pool: await poolStore(model), slots: await accountSlots(account) };
}

interface Scene {
  client: ClientAccount;
  model: string;
  runtime: ScriptedRuntime;
  sessionId: string;
  signal?: Peer;
  runtimePeer?: Peer;
  /** A second runtime of the model (for restarts). */
  spare?: ScriptedRuntime;
}

async function scene(slots = 1): Promise<Pick<Scene, "client" | "model" | "runtime">> {
  const client = await clientOf(freshAccount("fault"));
  const model = freshModel("fault");
  return { client, model, runtime: new ScriptedRuntime(model, "gpu-1", slots) };
}

// ── Eviction at every state ────────────────────────────────────────────────────────────────────────────────────

/** How to bring a session to a state, and then how to take it from there to a clean end by the client. */
const STATES: Record<string, { reach: () => Promise<Scene>; finish: (scene: Scene) => Promise<void>; segments: number }> = {
  "WAITING in the queue, a command buffered": {
    reach: async () => {
      const base = await scene();
      const { session_id: sessionId } = await createSession(base.client, base.model);
      const signal = await openSignal(base.client, sessionId);
      signal.send(command(1));
      await signal.next(commandStatus(1, "waiting"));
      return { ...base, sessionId, signal };
    },
    finish: async (s) => {
      await s.runtime.connect();
      const { peer } = await s.runtime.acceptAssignment();
      await negotiate(s.signal!, peer);
      expect(commandSeqs(await peer.takeUntil("command"))).toEqual([1]);
      s.runtimePeer = peer;
    },
    segments: 1,
  },
  "WAITING assigned, the runtime's socket up, no client yet": {
    reach: async () => {
      const base = await scene();
      await base.runtime.connect();
      const { session_id: sessionId } = await createSession(base.client, base.model);
      const { peer: runtimePeer } = await base.runtime.acceptAssignment();
      return { ...base, sessionId, runtimePeer };
    },
    finish: async (s) => {
      s.signal = await openSignal(s.client, s.sessionId);
      s.signal.send(command(1));
      await negotiate(s.signal, s.runtimePeer!);
      await s.runtimePeer!.next((frame) => frame.type === "command" && frame.seq === 1);
    },
    segments: 1,
  },
  "WAITING mid-negotiation: the offer relayed, not answered": {
    reach: async () => {
      const base = await scene();
      await base.runtime.connect();
      const { session_id: sessionId } = await createSession(base.client, base.model);
      const { peer: runtimePeer } = await base.runtime.acceptAssignment();
      const signal = await openSignal(base.client, sessionId);
      signal.send({ type: "offer", generation: 1, sdp: OFFER });
      await runtimePeer.next("offer");
      return { ...base, sessionId, signal, runtimePeer };
    },
    finish: async ({ signal, runtimePeer }) => {
      runtimePeer!.send({ type: "answer", generation: 1, sdp: ANSWER });
      expect(await signal!.next("answer")).toMatchObject({ generation: 1, sdp: ANSWER });
      runtimePeer!.send({ type: "peer_state", generation: 1, state: "connected" });
      await signal!.next(isStatus("ACTIVE"));
      signal!.send(command(1));
      await runtimePeer!.next((frame) => frame.type === "command" && frame.seq === 1);
    },
    segments: 1,
  },
  "ACTIVE, a command delivered and not yet acknowledged": {
    reach: async () => {
      const base = await scene();
      await base.runtime.connect();
      const active = await activeNativeSession(base.model, base.runtime, base.client);
      active.signal.send(command(1));
      await active.runtimePeer.next("command");
      return { ...base, ...active };
    },
    finish: async ({ signal, runtimePeer }) => {
      runtimePeer!.send({ type: "command_ack", seq: 1 });
      await signal!.next(commandStatus(1, "acknowledged"));
      signal!.send(command(2));
      expect(commandSeqs(await runtimePeer!.takeUntil((frame) => frame.type === "command" && frame.seq === 2))).toEqual([2]);
    },
    segments: 1,
  },
  "RECONNECTING, the client away": {
    reach: async () => {
      const base = await scene();
      await base.runtime.connect();
      const active = await activeNativeSession(base.model, base.runtime, base.client);
      active.signal.close(4001, "network lost");
      await expect.poll(() => stateOf(base.client, active.sessionId), POLL).toBe("RECONNECTING");
      return { ...base, ...active };
    },
    finish: async (s) => {
      s.signal = await openSignal(s.client, s.sessionId);
      expect(await s.signal.next(isStatus("ACTIVE"))).toMatchObject({ reason: "reconnected" });
      s.signal.send(command(1));
      expect(commandSeqs(await s.runtimePeer!.takeUntil("command"))).toEqual([1]);
    },
    segments: 3,
  },
  "RECONNECTING, the runtime away with a command unacknowledged and one waiting": {
    reach: async () => {
      const base = await scene();
      await base.runtime.connect();
      const active = await activeNativeSession(base.model, base.runtime, base.client);
      active.signal.send(command(1));
      await active.runtimePeer.next("command");
      await base.runtime.dropSession(active.sessionId);
      await active.signal.next(isStatus("RECONNECTING"));
      active.signal.send(command(2));
      await active.signal.next(commandStatus(2, "waiting"));
      return { ...base, ...active };
    },
    finish: async (s) => {
      s.runtimePeer = await s.runtime.openSession(s.sessionId, 0);
      expect(await s.signal!.next(isStatus("ACTIVE"))).toMatchObject({ reason: "reconnected" });
      expect(commandSeqs(await s.runtimePeer.takeUntil((frame) => frame.type === "command" && frame.seq === 2))).toEqual([1, 2]);
    },
    segments: 3,
  },
  "INACTIVE, the runtime lost past grace": {
    reach: async () => {
      const base = await scene();
      await base.runtime.connect();
      const spare = await new ScriptedRuntime(base.model, "gpu-2", 1).connect();
      const active = await activeNativeSession(base.model, base.runtime, base.client);
      await base.runtime.crash();
      await active.signal.next(isStatus("RECONNECTING"));
      await advanceClock(sessionStub(active.sessionId), GRACE + SECOND);
      await fireAlarm(active.sessionId);
      await expectToldEnd(active.signal, "INACTIVE", "runtime_lost");
      return { ...base, ...active, spare };
    },
    finish: async (s) => {
      expect((await getJson(s.client, `/sessions/${s.sessionId}`, { method: "PUT" })).body).toMatchObject({ state: "WAITING" });
      const { peer } = await s.spare!.acceptAssignment();
      s.signal = await openSignal(s.client, s.sessionId);
      s.signal.send(command(1));
      await negotiate(s.signal, peer, 2);
      expect(commandSeqs(await peer.takeUntil("command"))).toEqual([1]);
      s.runtimePeer = peer;
    },
    segments: 3,
  },
};

describe("eviction at every state: the session's, the pool's and the account's objects together", () => {
  it.each(Object.keys(STATES))("%s: nothing stored changes, and the session goes on to a clean end", async (name) => {
    const { reach, finish, segments } = STATES[name]!;
    const s = await reach();
    const account = s.client.account;
    // A closed segment may be pending for the ledger: its batch is 30 s away, so nothing writes meanwhile.
    const before = await stored(s.sessionId, s.model, account);
    await evictAll(s.sessionId, s.model, account);
    expect(await stored(s.sessionId, s.model, account)).toEqual(before);

    await finish(s);
    await advanceClock(sessionStub(s.sessionId), 10 * SECOND); // billed time, so the segments have a length
    s.signal!.send({ type: "close" });
    await expectToldEnd(s.signal!, "CLOSED", "client_closed");
    expect(await s.runtimePeer!.next("end")).toEqual({ type: "end", reason: "client_closed" });
    await expectNoSlotLeaked(s.sessionId, s.model, account);
    await expectLedgerWellFormed(s.sessionId, segments);
  });

  it("CLOSED: evicted, then its alarms fire again; nothing changes, nothing is released or billed twice", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { sessionId, signal } = await activeNativeSession(base.model, base.runtime, base.client);
    await advanceClock(sessionStub(sessionId), 20 * SECOND);
    signal.send({ type: "close" });
    await expectToldEnd(signal, "CLOSED", "client_closed");
    const [segment] = await expectLedgerWellFormed(sessionId, 1);
    const events = (await sessionStore(sessionId)).events;

    await evictAll(sessionId, base.model, base.client.account);
    await fireAlarm(sessionId);
    await fireAlarm(sessionId);
    expect(await ledgerRows(sessionId)).toEqual([segment]);
    expect((await sessionStore(sessionId)).events).toBe(events);
    expect((await getJson(base.client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "CLOSED", reason: "client_closed" });
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
  });
});

// ── Redeploy inside workerd: every object of a session aborted with its sockets ────────────────────────────────

describe("all of a session's objects aborted at once, their sockets closed (a redeploy)", () => {
  it("both sides come back; no command lost or doubled, the slots and the ledger add up", async () => {
    const base = await scene();
    await base.runtime.connect([]);
    const { sessionId, signal, runtimePeer } = await activeNativeSession(base.model, base.runtime, base.client);
    signal.send(command(1));
    await runtimePeer.next("command");
    await advanceClock(sessionStub(sessionId), 10 * SECOND);

    await evictAll(sessionId, base.model, base.client.account, "close");
    await signal.waitClosed();
    await runtimePeer.waitClosed();
    await base.runtime.control.waitClosed();

    // The runtime process is still there: it reconnects, registering with the session it serves, then resumes it.
    const runtime = await new ScriptedRuntime(base.model, "gpu-1", 1).connect([sessionId]);
    const again = await runtime.openSession(sessionId, 0);
    const client = await openSignal(base.client, sessionId);
    const welcome = await client.next("welcome");
    expect(welcome).toMatchObject({ next_command_seq: 2 });
    await expect.poll(() => stateOf(base.client, sessionId), POLL).toBe("ACTIVE");
    // Command 1 was never acknowledged: it comes again (the runtime skips what it processed), then 2, once each.
    client.send(command(2));
    expect(commandSeqs(await again.takeUntil((frame) => frame.type === "command" && frame.seq === 2))).toEqual([1, 2]);
    again.send({ type: "command_ack", seq: 2 });
    await client.next(commandStatus(2, "acknowledged"));

    await advanceClock(sessionStub(sessionId), 10 * SECOND);
    client.send({ type: "close" });
    await expectToldEnd(client, "CLOSED", "client_closed");
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
    const rows = await ledgerRows(sessionId);
    expect(rows.length).toBeGreaterThanOrEqual(1);
    await expectLedgerWellFormed(sessionId, rows.length);
    const billed = rows.reduce((sum, row) => sum + row.ended_at - row.started_at, 0);
    expect(Math.abs(billed - 20 * SECOND)).toBeLessThanOrEqual(SECOND);
  });
});

describe("after a redeploy, only one side comes back", () => {
  it("the runtime alone: the session notices its client is gone, and grace ends it at 30 ± 1 s (not the maximum length)", async () => {
    const base = await scene();
    await base.runtime.connect([]);
    const { sessionId, signal, runtimePeer } = await activeNativeSession(base.model, base.runtime, base.client);
    await evictAll(sessionId, base.model, base.client.account, "close");
    await signal.waitClosed();
    await runtimePeer.waitClosed();

    const runtime = await new ScriptedRuntime(base.model, "gpu-1", 1).connect([sessionId]);
    const again = await runtime.openSession(sessionId, 0);
    await expect.poll(() => stateOf(base.client, sessionId), POLL).toBe("RECONNECTING");
    expect((await getJson(base.client, `/sessions/${sessionId}`)).body).toMatchObject({ reason: "client_disconnected" });
    await advanceClock(sessionStub(sessionId), GRACE - SECOND);
    await fireAlarm(sessionId);
    expect(await stateOf(base.client, sessionId)).toBe("RECONNECTING");
    await advanceClock(sessionStub(sessionId), 2 * SECOND);
    await fireAlarm(sessionId);
    expect(await again.next("end")).toEqual({ type: "end", reason: "client_reconnect_timeout" });
    const [, grace] = await expectLedgerWellFormed(sessionId, 2);
    expect(grace!.ended_at - grace!.started_at).toBe(GRACE);
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
  });

  it("the client alone: its runtime is gone, so grace ends the session INACTIVE runtime_lost, and the client is told", async () => {
    const base = await scene();
    await base.runtime.connect([]);
    const { sessionId, signal, runtimePeer } = await activeNativeSession(base.model, base.runtime, base.client);
    await evictAll(sessionId, base.model, base.client.account, "close");
    await signal.waitClosed();
    await runtimePeer.waitClosed();

    const back = await openSignal(base.client, sessionId);
    expect(await back.next(isStatus("RECONNECTING"))).toMatchObject({ reason: "runtime_disconnected" });
    await advanceClock(sessionStub(sessionId), GRACE + SECOND);
    await fireAlarm(sessionId);
    await expectToldEnd(back, "INACTIVE", "runtime_lost");
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
  });
});

// ── The client drops, in every state ───────────────────────────────────────────────────────────────────────────

describe("the client drops in every state", () => {
  it("WAITING in the queue: nothing changes; back, it is told where it stands and its buffered command still goes once", async () => {
    const base = await scene();
    const { session_id: sessionId } = await createSession(base.client, base.model);
    const signal = await openSignal(base.client, sessionId);
    signal.send(command(1));
    await signal.next(commandStatus(1, "waiting"));
    signal.close(4001, "network lost");
    await signal.waitClosed();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const record = (await sessionStore(sessionId)).record!;
    expect(record).toMatchObject({ state: "WAITING" });
    expect((record.deadlines as Record<string, number>).grace).toBeUndefined();

    const back = await openSignal(base.client, sessionId);
    expect(await back.next("welcome")).toMatchObject({ next_command_seq: 2 });
    expect(await back.next("status")).toMatchObject({ state: "WAITING", reason: expect.any(String) });
    await base.runtime.connect();
    const { peer } = await base.runtime.acceptAssignment();
    await negotiate(back, peer);
    expect(commandSeqs(await peer.takeUntil("command"))).toEqual([1]);
  });

  /** A session whose client's offer reached the runtime, then the client's socket dropped before the answer. */
  async function droppedAfterOffer() {
    const base = await scene();
    await base.runtime.connect();
    const { session_id: sessionId } = await createSession(base.client, base.model);
    const { peer } = await base.runtime.acceptAssignment();
    const signal = await openSignal(base.client, sessionId);
    signal.send({ type: "offer", generation: 1, sdp: OFFER });
    await peer.next("offer");
    signal.close(4001, "network lost");
    await signal.waitClosed();
    return { base, sessionId, peer };
  }

  it("mid-negotiation: the answer that came while it was away is handed over when it is back", async () => {
    const { base, sessionId, peer } = await droppedAfterOffer();
    peer.send({ type: "answer", generation: 1, sdp: ANSWER });
    peer.send({ type: "ice", generation: 1, candidate: { candidate: "candidate:1 1 udp 1 192.0.2.7 9 typ host" } });

    const back = await openSignal(base.client, sessionId);
    const frames = await back.takeUntil("ice");
    expect(frames.map((frame) => frame.type)).toEqual(expect.arrayContaining(["welcome", "status", "answer", "ice"]));
    expect(frames.find((frame) => frame.type === "answer")).toMatchObject({ generation: 1, sdp: ANSWER });
    peer.send({ type: "peer_state", generation: 1, state: "connected" });
    await back.next(isStatus("ACTIVE"));
  });

  it("mid-negotiation, evicted: the answer and the runtime's candidates (written in one batch) are handed over", async () => {
    const { base, sessionId, peer } = await droppedAfterOffer();
    peer.send({ type: "answer", generation: 1, sdp: ANSWER });
    const candidates = [1, 2, 3].map((n) => ({ candidate: `candidate:${n} 1 udp 1 192.0.2.${n} 9 typ host` }));
    for (const candidate of candidates) peer.send({ type: "ice", generation: 1, candidate });
    // Relayed at once, stored as one batch shortly after: poll until all three rows are there, then evict.
    await expect.poll(async () => (await sessionStore(sessionId)).candidates, POLL).toBe(3);
    await evictDurableObject(sessionStub(sessionId));

    const back = await openSignal(base.client, sessionId);
    const frames = await back.takeUntil(
      (frame) => frame.type === "ice" && (frame.candidate as { candidate: string }).candidate === candidates[2]!.candidate,
    );
    expect(frames.find((frame) => frame.type === "answer")).toMatchObject({ generation: 1, sdp: ANSWER });
    expect(frames.filter((frame) => frame.type === "ice").map((frame) => frame.candidate)).toEqual(candidates);
  });

  it("ACTIVE and never back: RECONNECTING (client_disconnected), closed when grace ends at 30 ± 1 s, billed exactly 30 s", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(base.model, base.runtime, base.client);
    await advanceClock(sessionStub(sessionId), 5 * SECOND);
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(base.client, sessionId), POLL).toBe("RECONNECTING");
    expect((await getJson(base.client, `/sessions/${sessionId}`)).body).toMatchObject({ reason: "client_disconnected" });

    await advanceClock(sessionStub(sessionId), GRACE - SECOND); // 29 s: still within grace
    await fireAlarm(sessionId);
    expect(await stateOf(base.client, sessionId)).toBe("RECONNECTING");
    await advanceClock(sessionStub(sessionId), 2 * SECOND); // 31 s: past it
    await fireAlarm(sessionId);
    expect(await runtimePeer.next("end")).toEqual({ type: "end", reason: "client_reconnect_timeout" });

    // A client that comes back too late is told why, and the socket closes with that reason.
    const late = await openSignal(base.client, sessionId);
    await expectToldEnd(late, "CLOSED", "client_reconnect_timeout");
    const [active, grace] = await expectLedgerWellFormed(sessionId, 2);
    expect(Math.abs(active!.ended_at - active!.started_at - 5 * SECOND)).toBeLessThanOrEqual(SECOND);
    expect(grace!.state).toBe("RECONNECTING");
    expect(Math.abs(grace!.ended_at - grace!.started_at - GRACE)).toBeLessThanOrEqual(SECOND);
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
  });

  it("RECONNECTING with the runtime away, then the client drops too: the runtime's absence decides (INACTIVE runtime_lost)", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { sessionId, signal } = await activeNativeSession(base.model, base.runtime, base.client);
    await base.runtime.dropSession(sessionId);
    await signal.next(isStatus("RECONNECTING"));
    signal.close(4001, "network lost");
    await signal.waitClosed();
    await advanceClock(sessionStub(sessionId), GRACE + SECOND);
    await fireAlarm(sessionId);
    const late = await openSignal(base.client, sessionId);
    await expectToldEnd(late, "INACTIVE", "runtime_lost");
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
    await expectLedgerWellFormed(sessionId, 2);
  });
});

// ── The runtime crashes in the middle of an offer, and never returns ──────────────────────────────────────────

describe("the runtime crashes in the middle of an offer and never returns", () => {
  it("grace runs out at 30 ± 1 s: INACTIVE runtime_lost, the client told, the pool and account slots freed, nothing billed", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { session_id: sessionId } = await createSession(base.client, base.model);
    const { peer } = await base.runtime.acceptAssignment();
    const signal = await openSignal(base.client, sessionId);
    signal.send({ type: "offer", generation: 1, sdp: OFFER });
    await peer.next("offer");
    await base.runtime.crash();

    await advanceClock(sessionStub(sessionId), GRACE - SECOND);
    await fireAlarm(sessionId);
    expect(await stateOf(base.client, sessionId)).toBe("WAITING");
    await advanceClock(sessionStub(sessionId), 2 * SECOND);
    await fireAlarm(sessionId);
    await expectToldEnd(signal, "INACTIVE", "runtime_lost");
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
    expect(await ledgerRows(sessionId)).toEqual([]); // never ACTIVE: nothing to bill
  });
});

// ── Alarms that fire twice and late ────────────────────────────────────────────────────────────────────────────

describe("alarms firing twice and late", () => {
  it("a grace alarm ten minutes late, then again: one end, one RECONNECTING segment of exactly 30 s, slots freed once", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(base.model, base.runtime, base.client);
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(base.client, sessionId), POLL).toBe("RECONNECTING");
    await advanceClock(sessionStub(sessionId), GRACE + 10 * 60 * SECOND);
    await fireAlarm(sessionId);
    await fireAlarm(sessionId);
    expect(await runtimePeer.next("end")).toMatchObject({ reason: "client_reconnect_timeout" });
    await fireAlarm(sessionId);
    const types = ((await getJson(base.client, `/v1/sessions/${sessionId}/events`)).body.events as Frame[]).map((event) => event.type);
    expect(types.filter((type) => type === "ended")).toHaveLength(1);
    const [, grace] = await expectLedgerWellFormed(sessionId, 2);
    expect(grace!.ended_at - grace!.started_at).toBe(GRACE);
    expect(runtimePeer.frames.filter((frame) => frame.type === "end")).toEqual([]);
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
  });

  it("the pool's purge alarm fired twice after a runtime vanished: its session ends once, its slot goes to the queue once", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { sessionId, signal } = await activeNativeSession(base.model, base.runtime, base.client);
    const queued = await createSession(base.client, base.model);
    await base.runtime.crash();
    await signal.next(isStatus("RECONNECTING"));
    const second = await new ScriptedRuntime(base.model, "gpu-2", 1).connect();
    // The crashed runtime's slot is held through its grace; the new runtime's free slot takes the queued session.
    expect((await second.acceptAssignment()).sessionId).toBe(queued.session_id);

    await advanceClock(poolStub(base.model), GRACE + 6 * SECOND);
    await runDurableObjectAlarm(poolStub(base.model));
    await runDurableObjectAlarm(poolStub(base.model));
    await expectToldEnd(signal, "INACTIVE", "runtime_lost");
    const types = ((await getJson(base.client, `/v1/sessions/${sessionId}/events`)).body.events as Frame[]).map((event) => event.type);
    expect(types.filter((type) => type === "ended")).toHaveLength(1);
    const pool = await poolStore(base.model);
    expect(pool.runtimes.map((runtime) => runtime.id)).toEqual(["gpu-2"]);
    expect(pool.assignments).toEqual([{ session_id: queued.session_id, runtime_id: "gpu-2" }]);
    await expectNoSlotLeaked(sessionId, base.model, base.client.account);
  });

  it("the account's audit alarm fired twice: the slots of live sessions stay, a slot with no session is freed once", async () => {
    const base = await scene();
    const live = await createSession(base.client, base.model);
    // A slot taken by a creation whose session never came to exist (the request failed after taking it).
    const ghost = `ses_${"G".repeat(22)}`;
    await runInDurableObject(limitsStub(base.client.account), (limits: AccountLimits) =>
      limits.acquire({ accountId: base.client.account, sessionId: ghost, model: base.model, epoch: 0 }),
    );
    expect(await accountSlots(base.client.account)).toEqual([live.session_id, ghost].sort());
    await advanceClock(limitsStub(base.client.account), 3 * 60 * SECOND);
    await runDurableObjectAlarm(limitsStub(base.client.account));
    await runDurableObjectAlarm(limitsStub(base.client.account));
    expect(await accountSlots(base.client.account)).toEqual([live.session_id]);
    expect(await stateOf(base.client, live.session_id)).toBe("WAITING");
  });
});

// ── The pool aborted while sessions wait ───────────────────────────────────────────────────────────────────────

describe("the pool aborted (its sockets closed) while sessions wait", () => {
  it("the runtime re-registers with the session it serves; the waiting ones keep their order; no slot is leaked", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(base.model, base.runtime, base.client);
    const second = await createSession(base.client, base.model);
    const third = await createSession(base.client, base.model);

    await evictDurableObject(poolStub(base.model), { webSockets: "close" });
    await base.runtime.control.waitClosed();
    expect(await stateOf(base.client, sessionId)).toBe("ACTIVE"); // media and its session socket never needed the pool
    const back = await new ScriptedRuntime(base.model, "gpu-1", 1).connect([sessionId]);
    expect((await poolStore(base.model)).queue).toEqual([second.session_id, third.session_id]);

    signal.send({ type: "close" });
    await runtimePeer.next("end");
    expect((await back.acceptAssignment()).sessionId).toBe(second.session_id);
    await del(base.client, second.session_id);
    expect((await back.acceptAssignment()).sessionId).toBe(third.session_id);
    expect((await poolStore(base.model)).assignments).toEqual([{ session_id: third.session_id, runtime_id: "gpu-1" }]);
    await del(base.client, third.session_id);
    for (const id of [sessionId, second.session_id, third.session_id]) await expectNoSlotLeaked(id, base.model, base.client.account);
  });
});

// ── D1 and R2 failing on the write paths ───────────────────────────────────────────────────────────────────────

describe("D1 failing on the write paths", () => {
  it("the ledger: a segment whose write fails stays pending and is retried by alarm, then written once", async () => {
    const base = await scene();
    await base.runtime.connect();
    const { sessionId, signal } = await activeNativeSession(base.model, base.runtime, base.client);
    const restore = await failWrites("usage_segments", `NEW.session_id = '${sessionId}'`);
    try {
      await advanceClock(sessionStub(sessionId), 40 * SECOND);
      signal.send({ type: "close" });
      await expectToldEnd(signal, "CLOSED", "client_closed");
      expect(await ledgerRows(sessionId)).toEqual([]);
      expect((await sessionStore(sessionId)).pendingSegments).toBe(1);
      // While D1 still fails, every retry fails, and nothing is lost; the usage API shows the segment once meanwhile.
      await advanceClock(sessionStub(sessionId), 2 * SECOND);
      await fireAlarm(sessionId);
      expect((await sessionStore(sessionId)).pendingSegments).toBe(1);
      const usage = (await getJson(base.client, `/v1/sessions/${sessionId}/usage`)).body;
      expect(usage.segments).toHaveLength(1);
      expect(Math.abs((usage.billed_seconds as number) - 40)).toBeLessThanOrEqual(1);
    } finally {
      await restore();
    }
    await advanceClock(sessionStub(sessionId), 2 * SECOND);
    await fireAlarm(sessionId);
    const [row] = await expectLedgerWellFormed(sessionId, 1);
    expect(Math.abs(row!.ended_at - row!.started_at - 40 * SECOND)).toBeLessThanOrEqual(SECOND);
    await fireAlarm(sessionId);
    expect(await ledgerRows(sessionId)).toEqual([row]);
    expect((await getJson(base.client, `/v1/sessions/${sessionId}/usage`)).body.segments).toHaveLength(1);
  });

  it("the model directory: a failed listing does not stop the runtime serving, and the pool's alarm lists it later", async () => {
    const base = await scene();
    // A model served before (a brand-new model is refused until listed: models.test.ts); the write that fails is
    // the one marking it connected again.
    await registerModel(base.model);
    const restore = await failWrites("models", `NEW.name = '${base.model}'`);
    try {
      await base.runtime.connect(); // registered all the same
      const listed = await env.DB.prepare("SELECT name FROM models WHERE name = ? AND connected = 1").bind(base.model).first();
      expect(listed).toBeNull();
      const { sessionId } = await activeNativeSession(base.model, base.runtime, base.client);
      expect(await stateOf(base.client, sessionId)).toBe("ACTIVE");
      await base.runtime.heartbeat();
    } finally {
      await restore();
    }
    await runDurableObjectAlarm(poolStub(base.model));
    expect(await env.DB.prepare("SELECT name FROM models WHERE name = ? AND connected = 1").bind(base.model).first()).toEqual({ name: base.model });
  });

  it("API keys: a failed creation answers 500 INTERNAL (recoverable) and stores no key; the retry works", async () => {
    const account = freshAccount("d1");
    const admin = { Authorization: "Bearer test-admin-token", "Content-Type": "application/json" };
    const restore = await failWrites("api_keys", `NEW.account_id = '${account}'`);
    try {
      const refused = await call("/admin/keys", { method: "POST", headers: admin, body: JSON.stringify({ account }) });
      expect(refused.status).toBe(500);
      expect(await refused.json()).toMatchObject({ error: { code: "INTERNAL", recoverable: true } });
      const { results } = await env.DB.prepare("SELECT id FROM api_keys WHERE account_id = ?").bind(account).all();
      expect(results).toEqual([]);
    } finally {
      await restore();
    }
    expect((await call("/admin/keys", { method: "POST", headers: admin, body: JSON.stringify({ account }) })).status).toBe(201);
  });

  it("limit overrides: a failed write answers 500 INTERNAL and changes no limit; the retry applies", async () => {
    const account = freshAccount("d1");
    const client = await clientOf(account);
    const admin = { Authorization: "Bearer test-admin-token", "Content-Type": "application/json" };
    const restore = await failWrites("account_limits", `NEW.account_id = '${account}'`);
    try {
      const refused = await call(`/admin/accounts/${account}/limits`, {
        method: "PUT",
        headers: admin,
        body: JSON.stringify({ concurrent_sessions: 0 }),
      });
      expect(refused.status).toBe(500);
      expect(await errorCode(refused)).toBe("INTERNAL");
      expect((await getJson(client, "/v1/limits")).body).toMatchObject({ limits: { concurrent_sessions: 5 } });
    } finally {
      await restore();
    }
    expect(
      (await call(`/admin/accounts/${account}/limits`, { method: "PUT", headers: admin, body: JSON.stringify({ concurrent_sessions: 0 }) })).status,
    ).toBe(200);
    expect((await getJson(client, "/v1/limits")).body).toMatchObject({ limits: { concurrent_sessions: 0 } });
  });
});

describe("R2 failing on the write paths", () => {
  it("an upload's PUT: 502 UPLOAD_STORAGE_FAILED (recoverable), nothing stored, and the same URL works once R2 does", async () => {
    const client = await clientOf(freshAccount("r2"));
    const { session_id: sessionId } = await createSession(client, freshModel("r2"));
    const upload = await createUpload(client, sessionId, { size: 10 });
    const app = createApp();
    const failed = await app.request(
      upload.presigned_url,
      { method: "PUT", body: pattern(10), headers: { "Content-Type": PNG, "Content-Length": "10" } },
      {
        ...env,
        UPLOADS: failingBucket(env.UPLOADS),
      },
    );
    expect(failed.status).toBe(502);
    expect(await failed.json()).toMatchObject({ error: { code: "UPLOAD_STORAGE_FAILED", recoverable: true } });
    expect(await storedKeys(sessionId)).toEqual([]);
    expect((await put(upload.presigned_url, pattern(10))).status).toBe(200);
    expect(await storedKeys(sessionId)).toEqual([upload.path]);
  });

  it("deleting a session's files at its end: retried by alarm until R2 takes it", async () => {
    const client = await clientOf(freshAccount("r2"));
    const { session_id: sessionId } = await createSession(client, freshModel("r2"));
    const upload = await createUpload(client, sessionId, { size: 10 });
    expect((await put(upload.presigned_url, pattern(10))).status).toBe(200);
    // The session's object runs with a bucket that refuses deletes (its binding swapped on the live instance).
    await runInDurableObject(sessionStub(sessionId), (relay: SessionRelay) => {
      const self = relay as unknown as { env: Env };
      self.env = { ...self.env, UPLOADS: failingBucket(self.env.UPLOADS) };
    });
    await del(client, sessionId);
    expect(await storedKeys(sessionId)).toEqual([upload.path]);
    expect((await sessionStore(sessionId)).record).toMatchObject({ deadlines: { uploads: expect.any(Number) } });
    await fireAlarm(sessionId); // still failing: still there, still scheduled
    expect(await storedKeys(sessionId)).toEqual([upload.path]);

    await evictDurableObject(sessionStub(sessionId)); // back to the real binding, as after any restart
    await advanceClock(sessionStub(sessionId), 2 * SECOND);
    await fireAlarm(sessionId);
    expect(await storedKeys(sessionId)).toEqual([]);
    expect((await sessionStore(sessionId)).record).toMatchObject({ deadlines: { uploads: undefined } });
  });
});
