import { runDurableObjectAlarm, evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, errorCode } from "./helpers.ts";
import {
  activeNativeSession,
  advanceClock,
  freshModel,
  getJson,
  sessionStub,
  ANSWER,
  clientHeaders,
  createSession,
  newClient,
  OFFER,
  openSignal,
  ScriptedRuntime,
} from "./scripted.ts";

const stubOf = sessionStub;
const advanceSessionClock = (sessionId: string, ms: number) => advanceClock(sessionStub(sessionId), ms);

describe("REST lifecycle (the official client's calls)", () => {
  it("create → waiting → capabilities → SDP exchange → ACTIVE → DELETE closes and frees the slot", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();

    const created = await createSession(client, model);
    expect(created.session_id).toMatch(/^ses_[A-Za-z0-9_-]{22}$/);
    expect(created.state).toBe("WAITING");
    const { peer: runtimePeer, sessionId } = await runtime.acceptAssignment();
    expect(sessionId).toBe(created.session_id);

    const polled = await getJson(client, `/sessions/${sessionId}`);
    expect(polled.body).toMatchObject({
      state: "WAITING",
      selected_transport: { protocol: "webrtc", version: "1.0" },
      capabilities: { tracks: [{ name: "main_video" }] },
      model: { name: model, version: "1.0.0" },
    });

    const ice = await getJson(client, `/sessions/${sessionId}/transport/webrtc/ice_servers`);
    // STUN, then TURN with a credential for this session (the worker project configures coturn-style TURN).
    expect(ice.body).toMatchObject({
      ice_servers: [
        { uris: [expect.stringMatching(/^stun:/)] },
        {
          uris: [expect.stringMatching(/^turn:/), expect.anything(), expect.stringMatching(/^turns:/)],
          credentials: { username: expect.stringMatching(new RegExp(`:${sessionId}$`)) },
        },
      ],
    });

    const offer = await call(`/sessions/${sessionId}/transport/webrtc/sdp_params`, {
      method: "POST",
      headers: clientHeaders(client),
      body: JSON.stringify({ sdp_offer: OFFER, track_mapping: [{ mid: "0", name: "main_video", kind: "video", direction: "recvonly" }] }),
    });
    expect(offer.status).toBe(202);
    const relayed = await runtimePeer.next("offer");
    expect(relayed).toMatchObject({ generation: 1, sdp: OFFER });

    // The long poll answers the moment the answer exists, not at the end of its window.
    const pending = getJson(client, `/sessions/${sessionId}/transport/webrtc/sdp_params`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const answeredAt = Date.now();
    runtimePeer.send({ type: "answer", generation: 1, sdp: ANSWER });
    const answer = await pending;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ sdp_answer: ANSWER });
    expect(Date.now() - answeredAt).toBeLessThan(1500);

    runtimePeer.send({ type: "peer_state", generation: 1, state: "connected" });
    await expect.poll(async () => (await getJson(client, `/sessions/${sessionId}/info`)).body.state).toBe("ACTIVE");

    const deleted = await getJson(client, `/sessions/${sessionId}`, { method: "DELETE" });
    expect(deleted.body).toMatchObject({ state: "CLOSED", reason: "client_closed" });
    expect(await runtimePeer.next("end")).toMatchObject({ reason: "client_closed" });

    // The slot is free again: the next session is assigned at once.
    await createSession(client, model);
    await runtime.acceptAssignment();
  });

  it("answers GET /sessions/{id} with 202-free WAITING after the long-poll window when no GPU is free", async () => {
    const model = freshModel();
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    const started = Date.now();
    const polled = await getJson(client, `/sessions/${session_id}`);
    expect(polled.status).toBe(200);
    expect(polled.body.state).toBe("WAITING");
    expect(polled.body.capabilities).toBeUndefined();
    expect(polled.body.queue_position).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it("GET sdp_params is 202 while no answer exists", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    await runtime.acceptAssignment();
    await call(`/sessions/${session_id}/transport/webrtc/sdp_params`, {
      method: "POST",
      headers: clientHeaders(client),
      body: JSON.stringify({ sdp_offer: OFFER }),
    });
    const response = await call(`/sessions/${session_id}/transport/webrtc/sdp_params`, { headers: clientHeaders(client) });
    expect(response.status).toBe(202);
  });
});

describe("queue", () => {
  it("one slot, three sessions: positions, then FIFO assignment as slots free", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-q", 1).connect();
    const client = await newClient();

    const first = await createSession(client, model);
    await runtime.acceptAssignment();
    const second = await createSession(client, model);
    const third = await createSession(client, model);
    expect(second.queue_position).toBe(1);
    expect(third.queue_position).toBe(2);

    await getJson(client, `/sessions/${first.session_id}`, { method: "DELETE" });
    expect((await runtime.acceptAssignment()).sessionId).toBe(second.session_id);
    await expect.poll(async () => (await getJson(client, `/sessions/${third.session_id}/info`)).body.state).toBe("WAITING");
    const thirdView = await getJson(client, `/sessions/${third.session_id}`);
    expect(thirdView.body.queue_position).toBe(1);

    await getJson(client, `/sessions/${second.session_id}`, { method: "DELETE" });
    expect((await runtime.acceptAssignment()).sessionId).toBe(third.session_id);
  });

  it("runtimes arriving for a queue of five: oldest sessions first, spread over the runtimes, the rest keep their place", async () => {
    const model = freshModel();
    const client = await newClient();
    const queued: string[] = [];
    for (let i = 0; i < 5; i++) queued.push((await createSession(client, model)).session_id);

    const first = await new ScriptedRuntime(model, "gpu-a", 2).connect();
    const assignedToFirst = [(await first.acceptAssignment()).sessionId, (await first.acceptAssignment()).sessionId];
    expect(assignedToFirst.sort()).toEqual(queued.slice(0, 2).sort());
    const second = await new ScriptedRuntime(model, "gpu-b", 2).connect();
    const assignedToSecond = [(await second.acceptAssignment()).sessionId, (await second.acceptAssignment()).sessionId];
    expect(assignedToSecond.sort()).toEqual(queued.slice(2, 4).sort());
    await expect.poll(async () => (await getJson(client, `/sessions/${queued[4]}`)).body.queue_position).toBe(1);

    // A slot freed on either runtime goes to the last one waiting.
    await getJson(client, `/sessions/${queued[2]}`, { method: "DELETE" });
    expect((await second.acceptAssignment()).sessionId).toBe(queued[4]);
  });

  it("a model without runtimes keeps sessions waiting, then ends them INACTIVE with reason no_runtime", async () => {
    const client = await newClient();
    const { session_id } = await createSession(client, freshModel());
    expect((await getJson(client, `/sessions/${session_id}/info`)).body.state).toBe("WAITING");
    await advanceSessionClock(session_id, 601_000);
    expect(await runDurableObjectAlarm(stubOf(session_id))).toBe(true);
    const view = await getJson(client, `/sessions/${session_id}`);
    expect(view.body).toMatchObject({ state: "INACTIVE", reason: "no_runtime" });
  });
});

describe("grace window (alarms, not timers)", () => {
  it("a native client that drops and returns within 30 s keeps its session and GPU", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-g", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);

    signal.close(4001, "network lost");
    await expect.poll(async () => (await getJson(client, `/sessions/${sessionId}/info`)).body.state).toBe("RECONNECTING");
    await advanceSessionClock(sessionId, 20_000);
    await runDurableObjectAlarm(stubOf(sessionId)); // early: nothing may happen
    expect((await getJson(client, `/sessions/${sessionId}/info`)).body.state).toBe("RECONNECTING");

    const again = await openSignal(client, sessionId);
    await again.next((frame) => frame.type === "status" && frame.state === "ACTIVE");
    // An alarm that fires after the reconnect changes nothing.
    await advanceSessionClock(sessionId, 20_000);
    await runDurableObjectAlarm(stubOf(sessionId));
    expect((await getJson(client, `/sessions/${sessionId}/info`)).body.state).toBe("ACTIVE");
    expect(runtimePeer.frames.some((frame) => frame.type === "end")).toBe(false);
  });

  it("closes the session when the grace window passes, tells the runtime, and frees the slot", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-e", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const queued = await createSession(client, model);

    signal.close(4001, "gone");
    await expect.poll(async () => (await getJson(client, `/sessions/${sessionId}/info`)).body.state).toBe("RECONNECTING");
    await advanceSessionClock(sessionId, 30_001);
    expect(await runDurableObjectAlarm(stubOf(sessionId))).toBe(true);

    expect(await runtimePeer.next("end")).toMatchObject({ reason: "client_reconnect_timeout" });
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "CLOSED", reason: "client_reconnect_timeout" });
    expect((await runtime.acceptAssignment()).sessionId).toBe(queued.session_id);
  });

  it("a REST client's dropped peer connection (reported by the runtime) starts grace; PUT sdp_params resumes", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-r", 1).connect();
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    const { peer } = await runtime.acceptAssignment();
    const sdp = (method: string) =>
      call(`/sessions/${session_id}/transport/webrtc/sdp_params`, {
        method,
        headers: clientHeaders(client),
        body: JSON.stringify({ sdp_offer: OFFER }),
      });
    await sdp("POST");
    await peer.next("offer");
    peer.send({ type: "answer", generation: 1, sdp: ANSWER });
    peer.send({ type: "peer_state", generation: 1, state: "connected" });
    await expect.poll(async () => (await getJson(client, `/sessions/${session_id}/info`)).body.state).toBe("ACTIVE");

    peer.send({ type: "peer_state", generation: 1, state: "disconnected" });
    await expect.poll(async () => (await getJson(client, `/sessions/${session_id}/info`)).body.state).toBe("RECONNECTING");

    expect((await sdp("PUT")).status).toBe(202);
    expect(await peer.next("offer")).toMatchObject({ generation: 2 });
    // A late answer of the old generation is dropped, never delivered to the new peer connection.
    peer.send({ type: "answer", generation: 1, sdp: "stale" });
    peer.send({ type: "answer", generation: 2, sdp: ANSWER });
    const answer = await getJson(client, `/sessions/${session_id}/transport/webrtc/sdp_params`);
    expect(answer.body).toMatchObject({ sdp_answer: ANSWER });
    peer.send({ type: "peer_state", generation: 2, state: "connected" });
    await expect.poll(async () => (await getJson(client, `/sessions/${session_id}/info`)).body.state).toBe("ACTIVE");

    const events = await getJson(client, `/v1/sessions/${session_id}/events`);
    const types = (events.body.events as { type: string }[]).map((event) => event.type);
    expect(types).toEqual(expect.arrayContaining(["created", "assigned", "offer", "answer", "peer_lost", "stale_answer_dropped"]));
  });

  it("survives eviction in the middle of a session with nothing lost", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-v", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.send({ type: "command", seq: 1, command: { type: "set_prompt", data: { prompt: "a cat" } } });
    expect(await runtimePeer.next("command")).toMatchObject({ seq: 1 });

    await evictDurableObject(stubOf(sessionId));

    signal.send({ type: "command", seq: 2, command: { type: "set_prompt", data: { prompt: "a dog" } } });
    expect(await runtimePeer.next("command")).toMatchObject({ seq: 2, command: { data: { prompt: "a dog" } } });
    runtimePeer.send({ type: "command_ack", seq: 2 });
    await signal.next((frame) => frame.type === "command_status" && frame.seq === 2 && frame.state === "acknowledged");
    runtimePeer.send({ type: "message", seq: 1, scope: "application", data: { ok: true } });
    expect(await signal.next("message")).toMatchObject({ seq: 1, data: { ok: true } });
    expect((await getJson(client, `/sessions/${sessionId}/info`)).body.state).toBe("ACTIVE");
  });
});

describe("authorization", () => {
  it("another account gets 404 on every session route", async () => {
    const model = freshModel();
    const owner = await newClient();
    const stranger = await newClient();
    const { session_id } = await createSession(owner, model);
    for (const [method, path] of [
      ["GET", `/sessions/${session_id}`],
      ["GET", `/sessions/${session_id}/info`],
      ["PUT", `/sessions/${session_id}`],
      ["DELETE", `/sessions/${session_id}`],
      ["GET", `/v1/sessions/${session_id}/events`],
      ["GET", `/sessions/${session_id}/transport/webrtc/ice_servers`],
      ["GET", `/sessions/${session_id}/transport/webrtc/sdp_params`],
      ["POST", `/sessions/${session_id}/transport/webrtc/connections`],
    ] as const) {
      const response = await call(path, { method, headers: clientHeaders(stranger) });
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(await errorCode(response)).toBe("SESSION_NOT_FOUND");
    }
    const offer = await call(`/sessions/${session_id}/transport/webrtc/sdp_params`, {
      method: "POST",
      headers: clientHeaders(stranger),
      body: JSON.stringify({ sdp_offer: OFFER }),
    });
    expect(offer.status).toBe(404);
    await expect(openSignal(stranger, session_id)).rejects.toThrow(/404/);
    expect((await getJson(owner, `/sessions/${session_id}/info`)).body.state).toBe("WAITING");
  });

  it("refuses a client JWT on the runtime socket, and a runtime credential on client routes", async () => {
    const client = await newClient();
    const asRuntime = await call(`/v1/runtime/connect?model=x`, { headers: { Upgrade: "websocket", Authorization: `Bearer ${client.jwt}` } });
    expect(asRuntime.status).toBe(401);
    expect(await errorCode(asRuntime)).toBe("RUNTIME_CREDENTIAL_INVALID");
    const asClient = await call(`/sessions`, {
      method: "POST",
      headers: { Authorization: "Bearer rt_test_runtime_token_0123456789abcdef" },
      body: JSON.stringify({ model: { name: "x" } }),
    });
    expect(asClient.status).toBe(401);
    expect(await errorCode(asClient)).toBe("RUNTIME_CREDENTIAL_NOT_ACCEPTED");
  });

  it("refuses a runtime that is not assigned to the session", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-a", 1).connect();
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    await runtime.control.next("assign");
    const intruder = new ScriptedRuntime(model, "gpu-intruder", 1);
    await expect(intruder.openSession(session_id)).rejects.toThrow(/403/);
  });
});

describe("keep-alive", () => {
  it("answers a bare ping with a pong, also while the session object is evicted", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-k", 1).connect();
    const { sessionId, signal } = await activeNativeSession(model, runtime);
    await evictDurableObject(stubOf(sessionId));
    signal.send('{"type":"ping"}');
    expect(await signal.next("pong")).toEqual({ type: "pong" });
    signal.send({ type: "ping", t: 7 });
    expect(await signal.next("pong")).toEqual({ type: "pong", t: 7 });
  });
});
