/**
 * Faults: runtimes that drop, vanish, restart or go silent; sessions that run too long; alarms that fire early,
 * twice or late; objects evicted at awkward moments. Time is the objects' test clock (TEST_CLOCK=1), moved with
 * `advanceClock`, and deadlines fire through `runDurableObjectAlarm`: no test waits for real time to pass.
 */
import { runDurableObjectAlarm, runInDurableObject, evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  activeNativeSession,
  advanceClock,
  ANSWER,
  OFFER,
  command,
  commandSeqs,
  createSession,
  freshModel,
  getJson,
  isStatus,
  negotiate,
  newClient,
  openSignal,
  poolSnapshot,
  poolStub,
  ScriptedRuntime,
  sessionStub,
  stateOf,
  type ClientAccount,
  type Peer,
} from "./scripted.ts";

const SECOND = 1000;
const GRACE = 30 * SECOND;
const MAX_DURATION = 1200 * SECOND;

/** Fires the session's alarm now; the test clock decides which of its deadlines have passed. */
const fireSessionAlarm = (sessionId: string) => runDurableObjectAlarm(sessionStub(sessionId));

async function eventTypes(client: ClientAccount, sessionId: string): Promise<string[]> {
  const { body } = await getJson(client, `/v1/sessions/${sessionId}/events`);
  return (body.events as { type: string }[]).map((event) => event.type);
}

/** A command from the client reaches the runtime's socket `runtimePeer`. */
async function commandReaches(signal: Peer, runtimePeer: Peer, seq: number): Promise<void> {
  signal.send(command(seq));
  expect(commandSeqs(await runtimePeer.takeUntil((frame) => frame.type === "command" && frame.seq === seq)).at(-1)).toBe(seq);
}

describe("runtime drops and returns within grace", () => {
  it("the session goes RECONNECTING, and back to ACTIVE with the same id when the runtime's session socket returns", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);

    await runtime.dropSession(sessionId);
    const reconnecting = await signal.next(isStatus("RECONNECTING"));
    expect(reconnecting).toMatchObject({ reason: "runtime_disconnected", deadline: expect.any(Number) });
    await advanceClock(sessionStub(sessionId), 20 * SECOND);
    await fireSessionAlarm(sessionId); // early: nothing happens
    expect(await stateOf(client, sessionId)).toBe("RECONNECTING");

    const back = await runtime.openSession(sessionId);
    expect(await signal.next(isStatus("ACTIVE"))).toMatchObject({ reason: "reconnected" });
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ session_id: sessionId, state: "ACTIVE" });
    await commandReaches(signal, back, 1);
  });

  it("a runtime that drops in the middle of an offer gets the offer and the client's candidates again, even after an eviction", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, model);
    const { peer } = await runtime.acceptAssignment();
    const signal = await openSignal(client, sessionId);
    const candidate = { candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", sdp_mid: "0", sdp_mline_index: 0 };
    signal.send({ type: "offer", generation: 1, sdp: OFFER });
    signal.send({ type: "ice", generation: 1, candidate });
    await peer.next("offer");
    await peer.next("ice");

    await runtime.dropSession(sessionId); // crashed before answering
    await evictDurableObject(sessionStub(sessionId));
    const back = await runtime.openSession(sessionId);
    expect(await back.next("offer")).toMatchObject({ generation: 1, sdp: OFFER });
    expect(await back.next("ice")).toMatchObject({ generation: 1, candidate });
    back.send({ type: "answer", generation: 1, sdp: ANSWER });
    expect(await signal.next("answer")).toMatchObject({ generation: 1, sdp: ANSWER });
  });

  it("a grace alarm that fires after the runtime returned changes nothing", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);
    await runtime.dropSession(sessionId);
    await signal.next(isStatus("RECONNECTING"));
    const back = await runtime.openSession(sessionId);
    await signal.next(isStatus("ACTIVE"));

    await advanceClock(sessionStub(sessionId), GRACE + SECOND);
    await fireSessionAlarm(sessionId);
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    expect(back.frames.some((frame) => frame.type === "end")).toBe(false);
    await commandReaches(signal, back, 1);
  });
});

/** A session whose runtime ("gpu-a") died for good, past its grace: INACTIVE. A second runtime ("gpu-b") is up. */
async function sessionLostPastGrace() {
  const model = freshModel();
  const first = await new ScriptedRuntime(model, "gpu-a", 1).connect();
  const { client, sessionId, signal } = await activeNativeSession(model, first);
  const second = await new ScriptedRuntime(model, "gpu-b", 1).connect();

  await first.crash();
  await signal.next(isStatus("RECONNECTING"));
  await advanceClock(sessionStub(sessionId), GRACE + SECOND);
  expect(await fireSessionAlarm(sessionId)).toBe(true);
  return { model, client, sessionId, signal, second };
}

describe("runtime gone past grace", () => {
  it("ends the session INACTIVE with reason runtime_lost, and tells the client (status, then close)", async () => {
    const { client, sessionId, signal } = await sessionLostPastGrace();
    expect(await signal.next(isStatus("INACTIVE"))).toMatchObject({ reason: "runtime_lost" });
    expect(await signal.waitClosed()).toEqual({ code: 1000, reason: "runtime_lost" });
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "INACTIVE", reason: "runtime_lost" });
  });

  it("PUT /sessions/{id} restarts it: WAITING, then assigned to another runtime, with the same id", async () => {
    const { client, sessionId, second } = await sessionLostPastGrace();
    const restarted = await getJson(client, `/sessions/${sessionId}`, { method: "PUT" });
    expect(restarted.status).toBe(200);
    expect(restarted.body).toMatchObject({ session_id: sessionId, state: "WAITING" });

    const { sessionId: assigned, peer } = await second.acceptAssignment();
    expect(assigned).toBe(sessionId);
    const signal = await openSignal(client, sessionId);
    await negotiate(signal, peer, 2); // the client's next peer connection generation
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ session_id: sessionId, state: "ACTIVE" });
    expect(await eventTypes(client, sessionId)).toEqual(expect.arrayContaining(["ended", "assigned"]));
  });

  it("a restarted session is not purged by the retention deadline left from its previous end", async () => {
    const { client, sessionId, second } = await sessionLostPastGrace();
    await advanceClock(sessionStub(sessionId), 24 * 3600 * SECOND - 60 * SECOND); // retention ends in a minute
    await getJson(client, `/sessions/${sessionId}`, { method: "PUT" });
    const { peer } = await second.acceptAssignment();
    const signal = await openSignal(client, sessionId);
    await negotiate(signal, peer, 2);

    await advanceClock(sessionStub(sessionId), 2 * 60 * SECOND);
    await fireSessionAlarm(sessionId);
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ session_id: sessionId, state: "ACTIVE" });
    await commandReaches(signal, peer, 1);
  });
});

describe("runtime restarts", () => {
  it("re-registering without the session in `sessions` ends it INACTIVE runtime_restarted at once, and frees its slot", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const queued = await createSession(client, model);

    const restarted = await new ScriptedRuntime(model, "gpu-1", 1).connect([]);
    expect(await runtime.control.waitClosed()).toMatchObject({ code: 4000 });
    expect(await signal.next(isStatus("INACTIVE"))).toMatchObject({ reason: "runtime_restarted" });
    expect(await runtimePeer.next("end")).toMatchObject({ reason: "runtime_restarted" });
    expect((await signal.waitClosed()).reason).toBe("runtime_restarted");
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "INACTIVE", reason: "runtime_restarted" });
    expect((await restarted.acceptAssignment()).sessionId).toBe(queued.session_id);
  });

  it("re-registering with the session in `sessions` keeps it; its session socket resumes it", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);

    await runtime.crash();
    await signal.next(isStatus("RECONNECTING"));
    const restarted = await new ScriptedRuntime(model, "gpu-1", 1).connect([sessionId]);
    const back = await restarted.openSession(sessionId);
    await signal.next(isStatus("ACTIVE"));
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    await commandReaches(signal, back, 1);
  });
});

describe("heartbeat watchdog (pool alarm)", () => {
  /**
   * The watchdog compares real time with the last heartbeat the pool answered (a WebSocket auto-response, whose
   * timestamp the test cannot set) or, failing that, with the socket's acceptance time from its attachment. So
   * the test makes "a minute of silence" by moving every control socket's acceptance a minute back; a runtime
   * that heartbeats after that has a fresh auto-response timestamp and must be kept.
   */
  async function acceptedAMinuteAgo(model: string): Promise<void> {
    await runInDurableObject(poolStub(model), (_pool: unknown, state: DurableObjectState) => {
      for (const ws of state.getWebSockets()) {
        const attachment = ws.deserializeAttachment() as { acceptedAt: number };
        ws.serializeAttachment({ ...attachment, acceptedAt: attachment.acceptedAt - 60 * SECOND });
      }
    });
  }

  it("disconnects a runtime that stopped heartbeating, and keeps one that heartbeats", async () => {
    const model = freshModel();
    const silent = await new ScriptedRuntime(model, "gpu-silent", 1).connect();
    const alive = await new ScriptedRuntime(model, "gpu-alive", 1).connect();
    await acceptedAMinuteAgo(model);
    await alive.heartbeat();

    expect(await runDurableObjectAlarm(poolStub(model))).toBe(true);
    expect(await silent.control.waitClosed()).toEqual({ code: 4008, reason: "heartbeat timeout" });
    const { runtimes } = await poolSnapshot(model);
    expect(runtimes.map(({ id, connected }) => ({ id, connected }))).toEqual([
      { id: "gpu-alive", connected: true },
      { id: "gpu-silent", connected: false },
    ]);
    // New sessions go to the runtime that is still there.
    await createSession(await newClient(), model);
    await alive.acceptAssignment();
  });

  it("the sessions of a runtime it disconnected keep their slot through grace, then end INACTIVE runtime_lost", async () => {
    const model = freshModel();
    const silent = await new ScriptedRuntime(model, "gpu-silent", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, silent);
    await acceptedAMinuteAgo(model);
    await runDurableObjectAlarm(poolStub(model));
    await silent.control.waitClosed();
    expect(await stateOf(client, sessionId)).toBe("ACTIVE"); // its session socket is still up

    await advanceClock(poolStub(model), GRACE + 5 * SECOND + 1);
    expect(await runDurableObjectAlarm(poolStub(model))).toBe(true);
    expect(await signal.next(isStatus("INACTIVE"))).toMatchObject({ reason: "runtime_lost" });
    expect((await poolSnapshot(model)).runtimes).toEqual([]);
  });
});

describe("maximum session length", () => {
  it("closes an ACTIVE session after 1200 s with reason max_duration, tells both sides and frees the slot", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const queued = await createSession(client, model);

    await advanceClock(sessionStub(sessionId), MAX_DURATION);
    expect(await fireSessionAlarm(sessionId)).toBe(true);
    expect(await signal.next(isStatus("CLOSED"))).toMatchObject({ reason: "max_duration" });
    expect(await signal.waitClosed()).toEqual({ code: 1000, reason: "max_duration" });
    expect(await runtimePeer.next("end")).toEqual({ type: "end", reason: "max_duration" });
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "CLOSED", reason: "max_duration" });
    expect((await runtime.acceptAssignment()).sessionId).toBe(queued.session_id);
  });

  it("counts from the first time the session was ACTIVE: a reconnect does not start it again", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);
    await advanceClock(sessionStub(sessionId), MAX_DURATION - 100 * SECOND);
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(client, sessionId), { timeout: 5000 }).toBe("RECONNECTING");
    const again = await openSignal(client, sessionId);
    await again.next(isStatus("ACTIVE"));

    await advanceClock(sessionStub(sessionId), 100 * SECOND);
    await fireSessionAlarm(sessionId);
    expect(await again.next(isStatus("CLOSED"))).toMatchObject({ reason: "max_duration" });
  });
});

describe("alarms firing early, twice and late", () => {
  it("an alarm that fires before any deadline changes nothing, and the deadlines ahead still fire", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);
    await signal.sync(); // empty the queue

    expect(await fireSessionAlarm(sessionId)).toBe(true);
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    expect((await signal.sync()).filter((frame) => frame.type === "status")).toEqual([]);

    await advanceClock(sessionStub(sessionId), MAX_DURATION);
    expect(await fireSessionAlarm(sessionId)).toBe(true); // still scheduled after the early one
    expect(await stateOf(client, sessionId)).toBe("CLOSED");
  });

  it("an alarm firing again after the session ended changes nothing", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, runtimePeer } = await activeNativeSession(model, runtime);
    await advanceClock(sessionStub(sessionId), MAX_DURATION);
    await fireSessionAlarm(sessionId);
    await runtimePeer.next("end");

    await fireSessionAlarm(sessionId);
    await fireSessionAlarm(sessionId);
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "CLOSED", reason: "max_duration" });
    const types = await eventTypes(client, sessionId);
    expect(types.filter((type) => type === "ended")).toHaveLength(1);
  });

  it("a queue-wait alarm that fires late, after the session became ACTIVE, changes nothing", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    await advanceClock(sessionStub(sessionId), 601 * SECOND); // past the 600 s queue wait and the 60 s connect wait
    await fireSessionAlarm(sessionId);
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    await commandReaches(signal, runtimePeer, 1);
  });
});

describe("eviction", () => {
  it("a session evicted while WAITING for a GPU is assigned when a runtime arrives, and runs with its buffered commands", async () => {
    const model = freshModel();
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, model);
    const signal = await openSignal(client, sessionId);
    signal.send(command(1));
    await signal.next((frame) => frame.type === "command_status" && frame.state === "waiting");

    await evictDurableObject(sessionStub(sessionId));
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { peer } = await runtime.acceptAssignment();
    await negotiate(signal, peer);
    expect(commandSeqs(await peer.takeUntil("command"))).toEqual([1]);
  });

  it("a session evicted while WAITING for its client keeps its runtime, and goes ACTIVE when the client comes", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, model);
    const { peer } = await runtime.acceptAssignment();

    await evictDurableObject(sessionStub(sessionId));
    expect(await stateOf(client, sessionId)).toBe("WAITING");
    const signal = await openSignal(client, sessionId);
    await negotiate(signal, peer);
    await commandReaches(signal, peer, 1);
  });

  it("a session evicted while RECONNECTING resumes when the client returns", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(client, sessionId), { timeout: 5000 }).toBe("RECONNECTING");

    await evictDurableObject(sessionStub(sessionId));
    const again = await openSignal(client, sessionId);
    await again.next(isStatus("ACTIVE"));
    await commandReaches(again, runtimePeer, 1);
  });

  it("a session evicted while RECONNECTING still closes when its grace passes", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(client, sessionId), { timeout: 5000 }).toBe("RECONNECTING");

    await evictDurableObject(sessionStub(sessionId));
    await advanceClock(sessionStub(sessionId), GRACE + SECOND);
    expect(await fireSessionAlarm(sessionId)).toBe(true);
    expect(await runtimePeer.next("end")).toMatchObject({ reason: "client_reconnect_timeout" });
  });

  it("the pool evicted while sessions wait still hands each freed slot to the next waiting session", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const first = await createSession(client, model);
    await runtime.acceptAssignment();
    const second = await createSession(client, model);
    const third = await createSession(client, model);
    expect([second.queue_position, third.queue_position]).toEqual([1, 2]);

    await evictDurableObject(poolStub(model));
    await getJson(client, `/sessions/${first.session_id}`, { method: "DELETE" });
    expect((await runtime.acceptAssignment()).sessionId).toBe(second.session_id);
    expect((await poolSnapshot(model)).queue_length).toBe(1);

    await evictDurableObject(poolStub(model));
    await getJson(client, `/sessions/${second.session_id}`, { method: "DELETE" });
    expect((await runtime.acceptAssignment()).sessionId).toBe(third.session_id);
    expect(await stateOf(client, third.session_id)).toBe("WAITING");
  });
});
