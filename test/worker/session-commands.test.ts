/**
 * Commands (client → model) and messages (model → client) through the gateway, over the native client socket and
 * the runtime's session socket: order, exactly-once, per-command states, buffering before the session is ready,
 * buffer bounds, and what survives a client or runtime reconnect.
 *
 * "Never twice" is asserted with barriers, not with waits: a socket delivers in order, so everything the gateway
 * sent before a later frame (a sentinel command, a pong) has arrived by the time that frame has.
 */
import { describe, expect, it } from "vitest";
import {
  activeNativeSession,
  ANSWER,
  command,
  commandSeqs,
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
  stateOf,
  upgrade,
  RUNTIME_TOKEN,
  type Frame,
  type Peer,
} from "./scripted.ts";

/** A session that waits: its runtime (if any) has taken it, but no peer connection is up yet. */
async function waitingSession(options: { withRuntime: boolean }) {
  const model = freshModel();
  const runtime = new ScriptedRuntime(model, "gpu-w", 1);
  if (options.withRuntime) await runtime.connect();
  const client = await newClient();
  const { session_id: sessionId } = await createSession(client, model);
  const signal = await openSignal(client, sessionId);
  await signal.next("welcome");
  return { model, runtime, client, sessionId, signal };
}

/** Waits for the runtime to receive command `seq`; returns the seqs of every command it got up to then. */
const commandsUntil = async (runtimePeer: Peer, seq: number) =>
  commandSeqs(await runtimePeer.takeUntil((frame) => frame.type === "command" && frame.seq === seq));

/**
 * Offer, answer, connected peer: like `negotiate`, but also asserts that the runtime got no command before the
 * offer (commands sent before this call were therefore held back until ready).
 */
async function negotiateHoldingCommands(signal: Peer, runtimePeer: Peer): Promise<void> {
  signal.send({ type: "offer", generation: 1, sdp: OFFER });
  expect(commandSeqs(await runtimePeer.takeUntil("offer"))).toEqual([]);
  runtimePeer.send({ type: "answer", generation: 1, sdp: ANSWER });
  await signal.next("answer");
  runtimePeer.send({ type: "peer_state", generation: 1, state: "connected" });
  await signal.next(isStatus("ACTIVE"));
}

const message = (seq: number, data: unknown = { n: seq }) => ({ type: "message", seq, scope: "application", data });

const errorFor = (code: string) => (frame: Frame) => frame.type === "error" && frame.code === code;

describe("commands on an ACTIVE session", () => {
  it("are relayed in order and reported delivered, then acknowledged when the runtime acknowledges", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { signal, runtimePeer } = await activeNativeSession(model, runtime);

    await signal.sync(); // empty the queue
    for (const seq of [1, 2, 3]) signal.send(command(seq));
    const relayed = (await runtimePeer.takeUntil((frame) => frame.type === "command" && frame.seq === 3)).filter((f) => f.type === "command");
    expect(relayed).toEqual([1, 2, 3].map((seq) => ({ type: "command", seq, command: { type: "set_prompt", data: { prompt: `prompt ${seq}` } } })));
    // Straight to delivered, never waiting: the session was ready.
    const delivered = await signal.takeUntil(commandStatus(3, "delivered"));
    expect(delivered).toEqual([1, 2, 3].map((seq) => ({ type: "command_status", seq, state: "delivered" })));

    runtimePeer.send({ type: "command_ack", seq: 3 }); // cumulative
    const acknowledged = await signal.takeUntil(commandStatus(3, "acknowledged"));
    expect(acknowledged).toEqual([1, 2, 3].map((seq) => ({ type: "command_status", seq, state: "acknowledged" })));
  });

  it("refuses a replayed seq with COMMAND_REPLAYED and never relays it twice", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { signal, runtimePeer } = await activeNativeSession(model, runtime);

    signal.send(command(1));
    signal.send(command(2));
    signal.send(command(1, { data: { prompt: "replayed" } }));
    signal.send(command(2, { data: { prompt: "replayed" } }));
    expect(await signal.next(errorFor("COMMAND_REPLAYED"))).toMatchObject({ ref: { seq: 1 }, recoverable: false });
    expect(await signal.next(errorFor("COMMAND_REPLAYED"))).toMatchObject({ ref: { seq: 2 } });

    signal.send(command(3)); // sentinel
    const frames = await runtimePeer.takeUntil((frame) => frame.type === "command" && frame.seq === 3);
    expect(commandSeqs(frames)).toEqual([1, 2, 3]);
    expect(JSON.stringify(frames)).not.toContain("replayed");
  });

  it("answers a gap with COMMAND_SEQ_GAP naming the expected seq, and accepts that seq afterwards", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { signal, runtimePeer } = await activeNativeSession(model, runtime);

    signal.send(command(1));
    signal.send(command(4));
    expect(await signal.next(errorFor("COMMAND_SEQ_GAP"))).toMatchObject({ ref: { seq: 4, expected: 2 }, recoverable: true });
    signal.send(command(2));
    expect(await commandsUntil(runtimePeer, 2)).toEqual([1, 2]);
  });

  it("is exactly once and in order under duplicated and reordered command frames", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { signal, runtimePeer } = await activeNativeSession(model, runtime);

    // A seeded shuffle: before and after each seq k, frames for k+1 (too early), k again and older seqs.
    let seed = 0x5eed;
    const random = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const N = 40;
    const sent: number[] = [];
    for (let k = 1; k <= N; k++) {
      if (k < N && random() < 0.5) sent.push(k + 1);
      sent.push(k);
      if (random() < 0.5) sent.push(k);
      if (k > 1 && random() < 0.5) sent.push(1 + Math.floor(random() * (k - 1)));
    }
    for (const seq of sent) signal.send(command(seq));

    expect(await commandsUntil(runtimePeer, N)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    // Every frame that was not the next expected seq was refused with an error, and nothing more was relayed.
    const errors = (await signal.sync()).filter((frame) => frame.type === "error").map((frame) => frame.code);
    expect(errors).toHaveLength(sent.length - N);
    expect(new Set(errors)).toEqual(new Set(["COMMAND_SEQ_GAP", "COMMAND_REPLAYED"]));
    signal.send(command(N + 1));
    expect(await commandsUntil(runtimePeer, N + 1)).toEqual([N + 1]);
  });
});

describe("commands before the session is ready", () => {
  it("are buffered while WAITING and delivered in order when the session becomes ACTIVE", async () => {
    const { runtime, signal } = await waitingSession({ withRuntime: true });
    const { peer: runtimePeer } = await runtime.acceptAssignment();

    for (const seq of [1, 2, 3]) signal.send(command(seq));
    for (const seq of [1, 2, 3]) await signal.next(commandStatus(seq, "waiting"));
    await negotiateHoldingCommands(signal, runtimePeer);

    expect(await commandsUntil(runtimePeer, 3)).toEqual([1, 2, 3]);
    for (const seq of [1, 2, 3]) await signal.next(commandStatus(seq, "delivered"));
    runtimePeer.send({ type: "command_ack", seq: 3 });
    for (const seq of [1, 2, 3]) await signal.next(commandStatus(seq, "acknowledged"));
  });

  it("are buffered even before any runtime has the session, and reach the runtime that takes it", async () => {
    const { runtime, signal } = await waitingSession({ withRuntime: false });
    for (const seq of [1, 2]) signal.send(command(seq));
    await signal.next(commandStatus(2, "waiting"));

    await runtime.connect();
    const { peer: runtimePeer } = await runtime.acceptAssignment();
    await negotiateHoldingCommands(signal, runtimePeer);
    expect(await commandsUntil(runtimePeer, 2)).toEqual([1, 2]);
  });

  it("policy drop: a command that cannot be delivered now is reported dropped and never delivered", async () => {
    const { runtime, signal } = await waitingSession({ withRuntime: true });
    const { peer: runtimePeer } = await runtime.acceptAssignment();

    signal.send(command(1, { policy: "drop" }));
    expect(await signal.next(commandStatus(1, "dropped"))).toMatchObject({ error: "COMMAND_DROPPED" });
    await negotiate(signal, runtimePeer);
    // Once the session is ready, the same policy delivers.
    signal.send(command(2, { policy: "drop" }));
    await signal.next(commandStatus(2, "delivered"));
    expect(await commandsUntil(runtimePeer, 2)).toEqual([2]);
  });

  it("policy replace: the latest command of a type wins; the ones it replaced are reported replaced", async () => {
    const { runtime, signal } = await waitingSession({ withRuntime: true });
    const { peer: runtimePeer } = await runtime.acceptAssignment();

    signal.send(command(1, { data: { prompt: "first" } }));
    signal.send(command(2, { type: "set_seed", data: { seed: 7 } }));
    signal.send(command(3, { policy: "replace", data: { prompt: "second" } }));
    await signal.next(commandStatus(1, "replaced"));
    await signal.next(commandStatus(3, "waiting"));
    signal.send(command(4, { policy: "replace", data: { prompt: "latest" } }));
    await signal.next(commandStatus(3, "replaced"));
    await signal.next(commandStatus(4, "waiting"));

    await negotiate(signal, runtimePeer);
    const frames = (await runtimePeer.takeUntil((frame) => frame.type === "command" && frame.seq === 4)).filter((f) => f.type === "command");
    expect(frames).toEqual([
      { type: "command", seq: 2, command: { type: "set_seed", data: { seed: 7 } } },
      { type: "command", seq: 4, command: { type: "set_prompt", data: { prompt: "latest" } } },
    ]);
    const delivered = (await signal.sync()).filter((frame) => frame.type === "command_status" && frame.state === "delivered");
    expect(delivered.map((frame) => frame.seq)).toEqual([2, 4]);
  });

  it("bounds the buffer at COMMAND_BUFFER_COUNT (256): the next command is dropped with COMMAND_BUFFER_FULL, never silently", async () => {
    const { runtime, signal } = await waitingSession({ withRuntime: false });
    for (let seq = 1; seq <= 258; seq++) signal.send(command(seq));

    const frames = await signal.takeUntil(commandStatus(258, "dropped"));
    const statuses = frames.filter((frame) => frame.type === "command_status");
    expect(statuses.filter((frame) => frame.state === "waiting").map((frame) => frame.seq)).toEqual(Array.from({ length: 256 }, (_, i) => i + 1));
    expect(statuses.filter((frame) => frame.state === "dropped")).toEqual([
      { type: "command_status", seq: 257, state: "dropped", error: "COMMAND_BUFFER_FULL" },
      { type: "command_status", seq: 258, state: "dropped", error: "COMMAND_BUFFER_FULL" },
    ]);
    const errors = [...frames, await signal.next(errorFor("COMMAND_BUFFER_FULL"))].filter(errorFor("COMMAND_BUFFER_FULL"));
    expect(errors.map((frame) => frame.ref)).toEqual([{ seq: 257 }, { seq: 258 }]);
    expect(errors[0]).toMatchObject({ recoverable: true, retry_after: 1 });

    await runtime.connect();
    const { peer: runtimePeer } = await runtime.acceptAssignment();
    await negotiate(signal, runtimePeer);
    expect(await commandsUntil(runtimePeer, 256)).toEqual(Array.from({ length: 256 }, (_, i) => i + 1));
    signal.send(command(259)); // numbering goes on after the dropped ones
    expect(await commandsUntil(runtimePeer, 259)).toEqual([259]);
  });

  it("bounds the buffer by bytes (COMMAND_BUFFER_BYTES, 1 MiB) as well", async () => {
    const { signal } = await waitingSession({ withRuntime: false });
    const big = (seq: number) => command(seq, { data: { prompt: "x".repeat(220_000) } });
    for (let seq = 1; seq <= 5; seq++) signal.send(big(seq));
    for (let seq = 1; seq <= 4; seq++) await signal.next(commandStatus(seq, "waiting"));
    expect(await signal.next(commandStatus(5, "dropped"))).toMatchObject({ error: "COMMAND_BUFFER_FULL" });
  });

  it("a replace that does not fit the buffer is dropped and keeps the command it would have replaced", async () => {
    const { runtime, signal } = await waitingSession({ withRuntime: true });
    const { peer: runtimePeer } = await runtime.acceptAssignment();
    const sized = (seq: number, type: string, chars: number, policy?: "replace") => command(seq, { type, policy, data: { blob: "x".repeat(chars) } });

    signal.send(sized(1, "set_prompt", 150_000));
    for (let seq = 2; seq <= 5; seq++) signal.send(sized(seq, "set_seed", 220_000));
    await signal.next(commandStatus(5, "waiting"));
    // Without command 1 the buffer holds ~880 KB; the 240 KB replacement still does not fit under 1 MiB.
    signal.send(sized(6, "set_prompt", 240_000, "replace"));
    expect(await signal.next(commandStatus(6, "dropped"))).toMatchObject({ error: "COMMAND_BUFFER_FULL" });
    expect((await signal.sync()).some(commandStatus(1, "replaced"))).toBe(false);

    await negotiate(signal, runtimePeer);
    expect(await commandsUntil(runtimePeer, 5)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe("runtime drop and return", () => {
  it("resends unacknowledged commands in order; those up to hello.command_seq count as acknowledged", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);

    for (let seq = 1; seq <= 5; seq++) signal.send(command(seq));
    expect(await commandsUntil(runtimePeer, 5)).toEqual([1, 2, 3, 4, 5]);
    runtimePeer.send({ type: "command_ack", seq: 2 });
    await signal.next(commandStatus(2, "acknowledged"));

    // The runtime processed 3 and 4 but lost its socket before acknowledging them.
    await runtime.dropSession(sessionId);
    await signal.next(isStatus("RECONNECTING"));
    signal.send(command(6));
    signal.send(command(7));
    await signal.next(commandStatus(7, "waiting"));

    const back = await runtime.openSession(sessionId, 4);
    expect(await commandsUntil(back, 7)).toEqual([5, 6, 7]);
    await signal.next(commandStatus(3, "acknowledged"));
    await signal.next(commandStatus(4, "acknowledged"));
    await signal.next(isStatus("ACTIVE"));
    await signal.next(commandStatus(7, "delivered"));

    back.send({ type: "command_ack", seq: 7 });
    for (const seq of [5, 6, 7]) await signal.next(commandStatus(seq, "acknowledged"));
    signal.send(command(8));
    expect(await commandsUntil(back, 8)).toEqual([8]);
  });

  it("a runtime that opens a new session socket before the old one closed gets each command once", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.send(command(1));
    expect(await commandsUntil(runtimePeer, 1)).toEqual([1]);

    // The new socket is open but has not said hello yet when command 2 arrives.
    const { peer: fresh } = await upgrade(`/v1/runtime/sessions/${sessionId}?runtime_id=gpu-1`, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
    await runtimePeer.waitClosed(); // the gateway replaced the old one
    signal.send(command(2));
    await signal.next(commandStatus(2, "waiting")); // not before the runtime says hello on its new socket
    fresh!.send({ type: "hello", runtime_id: "gpu-1", command_seq: 1 });
    await signal.next(commandStatus(2, "delivered"));
    signal.send(command(3));

    const frames = await fresh!.takeUntil((frame) => frame.type === "command" && frame.seq === 3);
    expect(frames[0]).toMatchObject({ type: "session", session_id: sessionId });
    expect(commandSeqs(frames)).toEqual([2, 3]);
  });
});

describe("client drop and return", () => {
  it("resumes numbering at welcome.next_command_seq; resent old seqs are refused and not relayed again", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.send(command(1));
    signal.send(command(2));
    expect(await commandsUntil(runtimePeer, 2)).toEqual([1, 2]);

    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(client, sessionId), { timeout: 5000 }).toBe("RECONNECTING");
    const again = await openSignal(client, sessionId);
    expect(await again.next("welcome")).toMatchObject({ next_command_seq: 3 });
    await again.next(isStatus("ACTIVE"));
    // A client that did not see the statuses resends what it had in flight.
    again.send(command(2));
    expect(await again.next(errorFor("COMMAND_REPLAYED"))).toMatchObject({ ref: { seq: 2 } });
    again.send(command(3));
    await again.next(commandStatus(3, "delivered"));
    expect(await commandsUntil(runtimePeer, 3)).toEqual([3]);
  });

  it("model messages sent while the client is away are delivered on return, once each, in order", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);

    runtimePeer.send(message(1));
    runtimePeer.send(message(2));
    await signal.next((frame) => frame.type === "message" && frame.seq === 2);
    signal.send({ type: "ack", message_seq: 1 });
    signal.close(4001, "network lost");
    await expect.poll(() => stateOf(client, sessionId), { timeout: 5000 }).toBe("RECONNECTING");

    // While the client is away; the gateway acknowledges each message once stored, so message_ack 16 shows all are.
    for (let seq = 3; seq <= 16; seq++) runtimePeer.send(message(seq));
    await runtimePeer.next((frame) => frame.type === "message_ack" && frame.seq === 16);

    const again = await openSignal(client, sessionId);
    expect(await again.next("welcome")).toMatchObject({ message_seq: 16 });
    // 2 was never acknowledged, so it comes again (the client dedups by seq); 1 was, so it does not.
    runtimePeer.send(message(17));
    const frames = await again.takeUntil((frame) => frame.type === "message" && frame.seq === 17);
    expect(frames.filter((frame) => frame.type === "message").map((frame) => frame.seq)).toEqual(Array.from({ length: 16 }, (_, i) => i + 2));
    expect((await again.sync()).filter((frame) => frame.type === "message")).toEqual([]);
  });

  it("messages stored before the client's first connection are delivered when it connects; replays are not", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, model);
    const { peer: runtimePeer } = await runtime.acceptAssignment();
    for (let seq = 1; seq <= 16; seq++) {
      runtimePeer.send(message(seq));
      if (seq === 5) runtimePeer.send(message(3, "replayed"));
    }
    await runtimePeer.next((frame) => frame.type === "message_ack" && frame.seq === 16);

    const signal = await openSignal(client, sessionId);
    const messages = (await signal.sync()).filter((frame) => frame.type === "message");
    expect(messages.map((frame) => frame.seq)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(JSON.stringify(messages)).not.toContain("replayed");
  });
});

describe("commands and an ended session", () => {
  it("commands still buffered when the session ends are reported dropped with SESSION_ENDED", async () => {
    const { runtime, client, sessionId, signal } = await waitingSession({ withRuntime: true });
    const { peer: runtimePeer } = await runtime.acceptAssignment();
    signal.send(command(1));
    signal.send(command(2));
    await signal.next(commandStatus(2, "waiting"));

    expect((await getJson(client, `/sessions/${sessionId}`, { method: "DELETE" })).body).toMatchObject({ state: "CLOSED" });
    await signal.next(isStatus("CLOSED"));
    expect(await signal.next(commandStatus(1, "dropped"))).toMatchObject({ error: "SESSION_ENDED" });
    expect(await signal.next(commandStatus(2, "dropped"))).toMatchObject({ error: "SESSION_ENDED" });
    expect(await signal.waitClosed()).toMatchObject({ code: 1000, reason: "client_closed" });
    const runtimeFrames = await runtimePeer.takeUntil("end");
    expect(commandSeqs(runtimeFrames)).toEqual([]);
  });

  it("a command sent to an ended session is never relayed; the client is told the end and the socket closes", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.send({ type: "close", reason: "done" });
    await signal.waitClosed();
    await runtimePeer.next("end");

    const late = await openSignal(client, sessionId);
    late.send(command(1));
    expect(await late.next("welcome")).toMatchObject({ next_command_seq: 1 });
    expect(await late.next("status")).toMatchObject({ state: "CLOSED", reason: "done" });
    expect(await late.waitClosed()).toMatchObject({ code: 1000, reason: "done" });
    expect(commandSeqs(runtimePeer.frames)).toEqual([]);
    expect((await getJson(client, `/sessions/${sessionId}`)).body).toMatchObject({ state: "CLOSED", reason: "done" });
  });
});
