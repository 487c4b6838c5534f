/**
 * Bad input on every way into a session: the native client socket, the runtime's session socket, the runtime's
 * control socket, and the REST API. Each refusal carries its own error code, and afterwards the socket is still
 * open and the session still works for its rightful peers (a normal command still goes end to end).
 */
import { describe, expect, it } from "vitest";
import { call, errorCode } from "./helpers.ts";
import {
  activeNativeSession,
  ANSWER,
  clientHeaders,
  command,
  commandSeqs,
  commandStatus,
  createSession,
  freshModel,
  getJson,
  isStatus,
  newClient,
  OFFER,
  openSignal,
  ScriptedRuntime,
  stateOf,
  upgrade,
  RUNTIME_TOKEN,
  type ClientAccount,
  type Peer,
} from "./scripted.ts";

const KiB = 1024;

const candidate = (n: number) => ({
  candidate: `candidate:${n} 1 udp 2122260223 192.0.2.${n % 250} ${50_000 + n} typ host`,
  sdp_mid: "0",
  sdp_mline_index: 0,
});

/** An ACTIVE native session whose next command seq is tracked, so a test can prove it still works end to end. */
async function liveSession() {
  const model = freshModel();
  const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
  const session = await activeNativeSession(model, runtime);
  await session.signal.sync(); // start each test with an empty queue
  let seq = 0;
  /** A command from the client reaches the runtime, and the runtime's acknowledgement reaches the client. */
  const commandRoundTrip = async () => {
    seq++;
    session.signal.send(command(seq));
    await session.runtimePeer.next((frame) => frame.type === "command" && frame.seq === seq);
    session.runtimePeer.send({ type: "command_ack", seq });
    await session.signal.next(commandStatus(seq, "acknowledged"));
  };
  return { ...session, model, runtime, commandRoundTrip };
}

/** Bad frames every socket refuses the same way. `raw` is sent as is (a string, or bytes for a binary frame). */
const COMMON_BAD_FRAMES: [string, string, string | Uint8Array][] = [
  ["malformed JSON", "FRAME_MALFORMED", '{"type": "command", "seq": 1,'],
  ["a JSON value that is not a frame", "FRAME_INVALID", "[1, 2, 3]"],
  ["an unknown frame type", "UNKNOWN_FRAME_TYPE", JSON.stringify({ type: "teleport", to: "mars" })],
  ["a frame over 256 KiB", "FRAME_TOO_LARGE", JSON.stringify({ type: "ping", pad: "x".repeat(256 * KiB) })],
  // 90 000 characters, but 270 000 bytes on the wire: the limit is in bytes.
  ["a frame over 256 KiB in multi-byte characters", "FRAME_TOO_LARGE", JSON.stringify({ type: "ping", pad: "€".repeat(90_000) })],
  ["a binary frame", "FRAME_UNSUPPORTED", new Uint8Array([0x7b, 0x7d])],
];

function sendRaw(peer: Peer, raw: string | Uint8Array): void {
  peer.ws.send(raw);
}

describe("native client socket", () => {
  it.each([
    ...COMMON_BAD_FRAMES,
    ["a command without a seq", "FRAME_INVALID", JSON.stringify({ type: "command", command: { type: "set_prompt" } })],
    ["an offer with an SDP over 64 KiB", "SDP_TOO_LARGE", JSON.stringify({ type: "offer", generation: 2, sdp: OFFER + "a=x\r\n".repeat(14 * KiB) })],
  ] as [string, string, string | Uint8Array][])("%s → %s; the socket stays open and commands still flow", async (_, code, raw) => {
    const { signal, runtimePeer, commandRoundTrip } = await liveSession();
    sendRaw(signal, raw);
    expect(await signal.next("error")).toMatchObject({ code, recoverable: false });
    await commandRoundTrip();
    expect(signal.closed).toBeNull();
    // Nothing of the bad frame reached the runtime.
    expect(runtimePeer.frames.filter((frame) => frame.type === "offer")).toEqual([]);
  });

  it("an offer for a generation that is not newer → STALE_GENERATION, not relayed", async () => {
    const { signal, runtimePeer } = await liveSession();
    signal.send({ type: "offer", generation: 1, sdp: OFFER });
    expect(await signal.next("error")).toMatchObject({ code: "STALE_GENERATION", ref: { generation: 1 } });
    signal.send(command(1)); // barrier on the runtime's socket
    const frames = await runtimePeer.takeUntil("command");
    expect(frames.map((frame) => frame.type)).toEqual(["command"]);
    runtimePeer.send({ type: "command_ack", seq: 1 });
    await signal.next(commandStatus(1, "acknowledged"));
  });

  it("ICE for another generation → STALE_GENERATION, not relayed", async () => {
    const { signal, runtimePeer } = await liveSession();
    signal.send({ type: "ice", generation: 2, candidate: candidate(1) });
    expect(await signal.next("error")).toMatchObject({ code: "STALE_GENERATION", ref: { generation: 2 } });
    signal.send({ type: "ice", generation: 1, candidate: candidate(2) });
    expect(await runtimePeer.next("ice")).toMatchObject({ generation: 1, candidate: candidate(2) });
    expect(runtimePeer.frames.filter((frame) => frame.type === "ice")).toEqual([]);
  });

  it("more ICE candidates than the limit (256 per generation) → ICE_CANDIDATE_LIMIT; a new generation starts over", async () => {
    const { signal, runtimePeer } = await liveSession();
    for (let n = 1; n <= 257; n++) signal.send({ type: "ice", generation: 1, candidate: candidate(n) });
    expect(await signal.next("error")).toMatchObject({ code: "ICE_CANDIDATE_LIMIT", ref: { generation: 1 } });
    signal.send(command(1)); // barrier: everything relayed before it has arrived with it
    const relayed = (await runtimePeer.takeUntil("command")).filter((frame) => frame.type === "ice");
    expect(relayed.map((frame) => frame.candidate)).toEqual(Array.from({ length: 256 }, (_, n) => candidate(n + 1)));

    signal.send({ type: "offer", generation: 2, sdp: OFFER });
    await runtimePeer.next((frame) => frame.type === "offer" && frame.generation === 2);
    signal.send({ type: "ice", generation: 2, candidate: candidate(1) });
    expect(await runtimePeer.next("ice")).toMatchObject({ generation: 2 });
  });

  it("a replayed command seq → COMMAND_REPLAYED; commands go on", async () => {
    const { signal, commandRoundTrip } = await liveSession();
    await commandRoundTrip();
    signal.send(command(1));
    expect(await signal.next("error")).toMatchObject({ code: "COMMAND_REPLAYED", ref: { seq: 1 } });
    await commandRoundTrip();
  });

  it("a close whose reason is over the 123 bytes a close frame carries still ends the session cleanly", async () => {
    const { client, sessionId, signal, runtimePeer, model, runtime } = await liveSession();
    signal.send({ type: "close", reason: "€".repeat(100) }); // 100 characters, 300 bytes
    expect(await runtimePeer.next("end")).toMatchObject({ reason: "€".repeat(100) });
    const closed = await signal.waitClosed();
    expect(closed.code).toBe(1000);
    expect("€".repeat(100).startsWith(closed.reason)).toBe(true);
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "CLOSED" });
    // The slot was released.
    await createSession(client, model);
    await runtime.acceptAssignment();
  });
});

describe("runtime session socket", () => {
  it.each([
    ...COMMON_BAD_FRAMES,
    ["a message without data", "FRAME_INVALID", JSON.stringify({ type: "message", seq: 1, scope: "application" })],
    [
      "an answer with an SDP over 64 KiB",
      "SDP_TOO_LARGE",
      JSON.stringify({ type: "answer", generation: 1, sdp: ANSWER + "a=x\r\n".repeat(14 * KiB) }),
    ],
  ] as [string, string, string | Uint8Array][])("%s → %s; the socket stays open and commands still flow", async (_, code, raw) => {
    const { signal, runtimePeer, commandRoundTrip } = await liveSession();
    sendRaw(runtimePeer, raw);
    expect(await runtimePeer.next("error")).toMatchObject({ code });
    await commandRoundTrip();
    expect(runtimePeer.closed).toBeNull();
    expect((await signal.sync()).filter((frame) => frame.type === "answer" || frame.type === "message")).toEqual([]);
  });

  it.each([
    ["an answer", { type: "answer", generation: 7, sdp: ANSWER }],
    ["an ICE candidate", { type: "ice", generation: 7, candidate: candidate(1) }],
    ["a peer state", { type: "peer_state", generation: 7, state: "failed" }],
  ])("%s for another generation → STALE_GENERATION; the client never sees it", async (_, frame) => {
    const { client, sessionId, signal, runtimePeer, commandRoundTrip } = await liveSession();
    runtimePeer.send(frame);
    expect(await runtimePeer.next("error")).toMatchObject({ code: "STALE_GENERATION", ref: { generation: 7 } });
    await commandRoundTrip();
    expect((await signal.sync()).filter((f) => f.type !== "command_status")).toEqual([]);
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
  });

  it("more ICE candidates than the limit → ICE_CANDIDATE_LIMIT; the client gets the first 256", async () => {
    const { signal, runtimePeer, commandRoundTrip } = await liveSession();
    for (let n = 1; n <= 257; n++) runtimePeer.send({ type: "ice", generation: 1, candidate: candidate(n) });
    expect(await runtimePeer.next("error")).toMatchObject({ code: "ICE_CANDIDATE_LIMIT" });
    await commandRoundTrip();
    expect((await signal.sync()).filter((frame) => frame.type === "ice")).toHaveLength(256);
  });

  it("replayed message seqs are delivered once; a gap → MESSAGE_SEQ_GAP and is not delivered", async () => {
    const { signal, runtimePeer, commandRoundTrip } = await liveSession();
    const message = (seq: number, data: unknown) => ({ type: "message", seq, scope: "application", data });
    runtimePeer.send(message(1, "one"));
    runtimePeer.send(message(1, "one again"));
    runtimePeer.send(message(3, "three too early"));
    expect(await runtimePeer.next("error")).toMatchObject({ code: "MESSAGE_SEQ_GAP", ref: { seq: 3 } });
    runtimePeer.send(message(2, "two"));
    runtimePeer.send(message(3, "three"));
    const frames = await signal.takeUntil((frame) => frame.type === "message" && frame.seq === 3);
    expect(frames.filter((frame) => frame.type === "message").map((frame) => frame.data)).toEqual(["one", "two", "three"]);
    await commandRoundTrip();
    expect((await signal.sync()).filter((frame) => frame.type === "message")).toEqual([]);
  });

  it("a replayed command_ack changes nothing", async () => {
    const { signal, runtimePeer, commandRoundTrip } = await liveSession();
    await commandRoundTrip(); // seq 1, acknowledged
    runtimePeer.send({ type: "command_ack", seq: 1 });
    await commandRoundTrip(); // seq 2
    expect((await signal.sync()).filter((frame) => frame.type === "command_status" && frame.state === "acknowledged")).toEqual([]);
  });

  it("a release whose reason is longer than a close frame allows ends the session; a returning client is told", async () => {
    const { client, sessionId, signal, runtimePeer } = await liveSession();
    runtimePeer.send({ type: "release", reason: `model crashed: ${"x".repeat(240)}` });
    await signal.next(isStatus("INACTIVE"));
    await signal.waitClosed();
    const again = await openSignal(client, sessionId);
    expect(await again.next("status")).toMatchObject({ state: "INACTIVE", reason: expect.stringMatching(/^runtime_released: model crashed: x+$/) });
    expect((await again.waitClosed()).code).toBe(1000);
  });

  it("a hello naming another runtime is refused and closed; the session's own runtime is unaffected", async () => {
    const { client, sessionId, signal, runtimePeer } = await liveSession();
    const { peer: impostor } = await upgrade(`/v1/runtime/sessions/${sessionId}?runtime_id=gpu-1`, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
    impostor!.send({ type: "hello", runtime_id: "gpu-other", command_seq: 0 });
    expect(await impostor!.next("error")).toMatchObject({ code: "RUNTIME_NOT_ASSIGNED" });
    expect((await impostor!.waitClosed()).code).toBe(4003);
    // It replaced the runtime's socket before being refused: the runtime comes back and the session resumes.
    await runtimePeer.waitClosed();
    await signal.next(isStatus("RECONNECTING"));
    const back = await new ScriptedRuntime("unused", "gpu-1", 1).openSession(sessionId, 0);
    await signal.next(isStatus("ACTIVE"));
    signal.send(command(1));
    expect(commandSeqs(await back.takeUntil("command"))).toEqual([1]);
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
  });
});

describe("runtime control socket", () => {
  it.each([...COMMON_BAD_FRAMES, ["a capacity frame with negative slots", "FRAME_INVALID", JSON.stringify({ type: "capacity", slots: -1 })]] as [
    string,
    string,
    string | Uint8Array,
  ][])("%s → %s; the runtime stays registered and still gets sessions", async (_, code, raw) => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    sendRaw(runtime.control, raw);
    expect(await runtime.control.next("error")).toMatchObject({ code });
    const { session_id } = await createSession(await newClient(), model);
    expect((await runtime.acceptAssignment()).sessionId).toBe(session_id);
    expect(runtime.control.closed).toBeNull();
  });

  it("capacity before register, and register for another model, are refused; registering properly then works", async () => {
    const model = freshModel();
    const { peer: control } = await upgrade(`/v1/runtime/connect?model=${model}`, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
    control!.send({ type: "capacity", slots: 4 });
    expect(await control!.next("error")).toMatchObject({ code: "FRAME_INVALID", message: expect.stringContaining("register") });
    const register = {
      type: "register",
      runtime_id: "gpu-1",
      model: { name: "another-model" },
      capabilities: { protocol_version: "1.0", tracks: [] },
      slots: 1,
    };
    control!.send(register);
    expect(await control!.next("error")).toMatchObject({ code: "FRAME_INVALID", message: expect.stringContaining(model) });
    control!.send({ ...register, model: { name: model } });
    await control!.next("registered");
    await createSession(await newClient(), model);
    await control!.next("assign");
  });

  it("a replayed register on the same socket is refused; the runtime keeps its socket and its sessions", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 2).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    runtime.control.send({
      type: "register",
      runtime_id: "gpu-1",
      model: { name: model },
      capabilities: { protocol_version: "1.0", tracks: [] },
      slots: 2,
      sessions: [],
    });
    expect(await runtime.control.next("error")).toMatchObject({ code: "FRAME_INVALID" });
    signal.send(command(1));
    await runtimePeer.next("command");
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    const { session_id } = await createSession(client, model);
    expect((await runtime.acceptAssignment()).sessionId).toBe(session_id);
    expect(runtime.control.closed).toBeNull();
  });
});

// ── REST ─────────────────────────────────────────────────────────────────────────────────────────────────────

const transport = (sessionId: string) => `/sessions/${sessionId}/transport/webrtc`;

/** A session taken by a runtime, for a REST client (no native socket). */
async function restSession() {
  const model = freshModel();
  const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
  const client = await newClient();
  const { session_id: sessionId } = await createSession(client, model);
  const { peer: runtimePeer } = await runtime.acceptAssignment();
  return { model, runtime, client, sessionId, runtimePeer };
}

function post(client: ClientAccount, path: string, body: unknown, method = "POST") {
  return call(path, { method, headers: clientHeaders(client), body: typeof body === "string" ? body : JSON.stringify(body) });
}

describe("REST: invalid bodies", () => {
  it.each([
    ["POST /sessions without a model", "/sessions", {}],
    ["POST /sessions with an empty model name", "/sessions", { model: { name: "" } }],
    ["POST /sessions with extra_args that is not an object", "/sessions", { model: { name: "m" }, extra_args: "x" }],
    ["POST sdp_params without sdp_offer", "sdp_params", {}],
    ["POST sdp_params with a number as SDP", "sdp_params", { sdp_offer: 5 }],
    ["POST sdp_params with an empty SDP", "sdp_params", { sdp_offer: "" }],
    ["POST ice_candidates with candidates that is not a list", "ice", { candidates: "x" }],
    ["POST ice_candidates with more than 64 candidates", "ice", { candidates: Array.from({ length: 65 }, (_, n) => candidate(n)) }],
    ["POST ice_candidates with an oversized candidate", "ice", { candidates: [{ candidate: "c".repeat(2049) }] }],
  ])("%s → 400 INVALID_REQUEST; the session is untouched", async (_, target, body) => {
    const { client, sessionId, runtimePeer } = await restSession();
    const path =
      target === "sdp_params"
        ? `${transport(sessionId)}/sdp_params`
        : target === "ice"
          ? `${transport(sessionId)}/connections/conn_0/ice_candidates`
          : target;
    const response = await post(client, path, body);
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe("INVALID_REQUEST");
    expect(await stateOf(client, sessionId)).toBe("WAITING");
    expect(runtimePeer.frames.filter((frame) => frame.type === "offer" || frame.type === "ice")).toEqual([]);
  });

  it("a body that is not JSON → 400 INVALID_JSON", async () => {
    const { client, sessionId } = await restSession();
    for (const path of ["/sessions", `${transport(sessionId)}/sdp_params`]) {
      const response = await post(client, path, "{not json");
      expect(response.status, path).toBe(400);
      expect(await errorCode(response)).toBe("INVALID_JSON");
    }
  });

  it.each([
    ["POST sdp_params", "POST", "sdp_params"],
    ["PUT sdp_params", "PUT", "sdp_params"],
    ["POST connections/{cid}/sdp_params", "POST", "connections/conn_1/sdp_params"],
  ])("%s with an SDP over 64 KiB → 413 SDP_TOO_LARGE, nothing relayed", async (_, method, suffix) => {
    const { client, sessionId, runtimePeer } = await restSession();
    const response = await post(client, `${transport(sessionId)}/${suffix}`, { sdp_offer: OFFER + "a=x\r\n".repeat(14 * KiB) }, method);
    expect(response.status).toBe(413);
    expect(await errorCode(response)).toBe("SDP_TOO_LARGE");
    // A normal offer afterwards is relayed as the first offer.
    expect((await post(client, `${transport(sessionId)}/sdp_params`, { sdp_offer: OFFER })).status).toBe(202);
    expect(await runtimePeer.next("offer")).toMatchObject({ sdp: OFFER });
  });
});

describe("REST: session ids", () => {
  it.each([
    ["malformed", "not-a-session"],
    ["well-formed but unknown", "ses_AAAAAAAAAAAAAAAAAAAAAA"],
  ])("a %s id → 404 SESSION_NOT_FOUND on every route and socket", async (_, id) => {
    const client = await newClient();
    for (const [method, path] of [
      ["GET", `/sessions/${id}`],
      ["GET", `/sessions/${id}/info`],
      ["PUT", `/sessions/${id}`],
      ["DELETE", `/sessions/${id}`],
      ["GET", `/v1/sessions/${id}/events`],
      ["GET", `${transport(id)}/ice_servers`],
      ["GET", `${transport(id)}/sdp_params`],
      ["POST", `${transport(id)}/connections`],
      ["GET", `${transport(id)}/connections/conn_1/sdp_params`],
    ] as const) {
      const response = await call(path, { method, headers: clientHeaders(client) });
      expect(response.status, `${method} ${path}`).toBe(404);
      expect(await errorCode(response)).toBe("SESSION_NOT_FOUND");
    }
    for (const path of [`${transport(id)}/sdp_params`, `${transport(id)}/connections/conn_1/ice_candidates`]) {
      const response = await post(client, path, path.endsWith("sdp_params") ? { sdp_offer: OFFER } : { candidates: [] });
      expect(response.status, path).toBe(404);
    }
    const signal = await upgrade(`/v1/sessions/${id}/signal`, { "Sec-WebSocket-Protocol": `reactor.v1, bearer.${client.jwt}` });
    expect(signal.response.status).toBe(404);
    const runtime = await upgrade(`/v1/runtime/sessions/${id}?runtime_id=gpu-1`, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
    expect(runtime.response.status).toBe(404);
  });
});

describe("REST: connection-scoped transport", () => {
  it("POST connections → 201; POST sdp_params → 202; GET → 202 then 200; ICE → 202 and relayed", async () => {
    const { client, sessionId, runtimePeer } = await restSession();
    const created = await post(client, `${transport(sessionId)}/connections`, "");
    expect(created.status).toBe(201);
    const { connection_id, track_map } = (await created.json()) as { connection_id: string; track_map: unknown[] };
    expect(connection_id).toMatch(/^conn_\d+$/);
    expect(track_map).toEqual([{ name: "main_video", kind: "video", direction: "recvonly" }]);
    const base = `${transport(sessionId)}/connections/${connection_id}`;

    const offered = await post(client, `${base}/sdp_params`, { sdp_offer: OFFER });
    expect(offered.status).toBe(202);
    expect(await offered.json()).toEqual({ connection_id });
    const offer = await runtimePeer.next("offer");
    expect(offer).toMatchObject({ sdp: OFFER });

    expect((await getJson(client, `${base}/sdp_params`)).status).toBe(202); // held LONG_POLL_MS, no answer yet
    runtimePeer.send({ type: "answer", generation: offer.generation, sdp: ANSWER });
    const answered = await getJson(client, `${base}/sdp_params`);
    expect(answered).toEqual({ status: 200, body: { sdp_answer: ANSWER, connection_id } });

    const ice = await post(client, `${base}/ice_candidates`, { candidates: [candidate(1), candidate(2)], is_final: true });
    expect(ice.status).toBe(202);
    const relayed = [await runtimePeer.next("ice"), await runtimePeer.next("ice"), await runtimePeer.next("ice")];
    expect(relayed).toEqual([
      { type: "ice", generation: offer.generation, candidate: candidate(1) },
      { type: "ice", generation: offer.generation, candidate: candidate(2) },
      { type: "ice", generation: offer.generation, candidate: null },
    ]);

    runtimePeer.send({ type: "peer_state", generation: offer.generation, state: "connected" });
    await expect.poll(() => stateOf(client, sessionId), { timeout: 5000 }).toBe("ACTIVE");
  });

  it.each(["conn_999", "conn_x", "other"])(
    "a connection id that was never issued (%s) → 404 CONNECTION_NOT_FOUND, generation untouched",
    async (unknown) => {
      const { client, sessionId, runtimePeer } = await restSession();
      const refused = [
        await post(client, `${transport(sessionId)}/connections/${unknown}/sdp_params`, { sdp_offer: OFFER }),
        await call(`${transport(sessionId)}/connections/${unknown}/sdp_params`, { headers: clientHeaders(client) }),
        await post(client, `${transport(sessionId)}/connections/${unknown}/ice_candidates`, { candidates: [candidate(1)] }),
      ];
      for (const response of refused) {
        expect(response.status).toBe(404);
        expect(await errorCode(response)).toBe("CONNECTION_NOT_FOUND");
      }
      // The next real connection still takes the next generation.
      const created = (await (await post(client, `${transport(sessionId)}/connections`, "")).json()) as { connection_id: string };
      expect((await post(client, `${transport(sessionId)}/connections/${created.connection_id}/sdp_params`, { sdp_offer: OFFER })).status).toBe(202);
      expect(`conn_${(await runtimePeer.next("offer")).generation as number}`).toBe(created.connection_id);
    },
  );

  it("an older connection id after a newer one → 410 CONNECTION_SUPERSEDED; the newer one works", async () => {
    const { client, sessionId, runtimePeer } = await restSession();
    const connection = async () =>
      ((await (await post(client, `${transport(sessionId)}/connections`, "")).json()) as { connection_id: string }).connection_id;
    const older = await connection();
    const newer = await connection();
    expect(newer).not.toBe(older);

    const refused = [
      await post(client, `${transport(sessionId)}/connections/${older}/sdp_params`, { sdp_offer: OFFER }),
      await call(`${transport(sessionId)}/connections/${older}/sdp_params`, { headers: clientHeaders(client) }),
      await post(client, `${transport(sessionId)}/connections/${older}/ice_candidates`, { candidates: [candidate(1)] }),
    ];
    for (const response of refused) {
      expect(response.status).toBe(410);
      expect(await errorCode(response)).toBe("CONNECTION_SUPERSEDED");
    }

    expect((await post(client, `${transport(sessionId)}/connections/${newer}/sdp_params`, { sdp_offer: OFFER })).status).toBe(202);
    const offer = await runtimePeer.next("offer");
    expect(`conn_${offer.generation as number}`).toBe(newer);
    expect(runtimePeer.frames.filter((frame) => frame.type === "offer" || frame.type === "ice")).toEqual([]);
  });

  it("ICE over the per-connection limit → 429 ICE_CANDIDATE_LIMIT, and none of that request is relayed", async () => {
    const { client, sessionId, runtimePeer } = await restSession();
    const { connection_id } = (await (await post(client, `${transport(sessionId)}/sdp_params`, { sdp_offer: OFFER })).json()) as {
      connection_id: string;
    };
    await runtimePeer.next("offer");
    const trickle = (from: number, count: number, final = false) =>
      post(client, `${transport(sessionId)}/connections/${connection_id}/ice_candidates`, {
        candidates: Array.from({ length: count }, (_, n) => candidate(from + n)),
        ...(final && { is_final: true }),
      });
    for (let batch = 0; batch < 3; batch++) expect((await trickle(batch * 64, 64)).status).toBe(202);

    const over = await trickle(192, 64, true); // 64 + the end-of-candidates marker: one too many
    expect(over.status).toBe(429);
    expect(await errorCode(over)).toBe("ICE_CANDIDATE_LIMIT");
    expect((await trickle(192, 64)).status).toBe(202); // exactly the limit
    const relayed = [];
    for (let n = 0; n < 256; n++) relayed.push(await runtimePeer.next("ice"));
    expect(relayed.map((frame) => (frame.candidate as { candidate: string }).candidate)).toEqual(
      Array.from({ length: 256 }, (_, n) => candidate(n).candidate),
    );
    expect(runtimePeer.frames.filter((frame) => frame.type === "ice")).toEqual([]);
  });
});
