/**
 * Fuzzing the three sockets with generated and mutated frames (test/worker/fuzz-kit.ts), inside workerd against the
 * real objects: the native signaling socket (ClientFrame) and the runtime's session socket (RuntimeSessionFrame)
 * into a live ACTIVE session, the runtime's control socket (RuntimeControlFrame) into its model's pool.
 *
 * Most frames are handed to the object's own `webSocketMessage` with the real server-side socket (what workerd does
 * for each frame that arrives), in batches, so a CI run can afford 100,000 of them; a share of every batch goes
 * over the real socket end to end. Whatever the object answers travels back over the real socket.
 *
 * Invariants, for every frame: the object never throws and nothing is left unhandled; every error answer carries a
 * code from src/errors.ts, and every frame the protocol module refuses is answered with one. Afterwards the session
 * still works for its rightful peers: a new offer and answer, a command delivered and acknowledged, a model message
 * delivered; the pool still assigns.
 */
import { runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ModelPool } from "../../durable-objects/pool/model-pool.ts";
import type { SessionRelay } from "../../durable-objects/session/session-relay.ts";
import { decodeFrame } from "../../protocol/frames.ts";
import { RuntimeControlFrame, RuntimeSessionFrame } from "../../protocol/runtime.ts";
import type { Schema } from "../../protocol/schema.ts";
import { ClientFrame } from "../../protocol/signaling.ts";
import { samples, show, Tally, fuzzSettings, type Sample } from "./fuzz-kit.ts";
import { sessionStore } from "./invariants.ts";
import { POLL } from "./helpers.ts";
import { clientOf, freshAccount, setLimits } from "./limits-helpers.ts";
import {
  activeNativeSession,
  ANSWER,
  command,
  commandStatus,
  createSession,
  freshModel,
  newClient,
  OFFER,
  poolStub,
  ScriptedRuntime,
  sessionStub,
  type Frame,
  type Peer,
} from "./scripted.ts";

const { frames: TOTAL, seed: SEED } = fuzzSettings();
/** Shares of the run's frames: native socket, runtime session socket, control socket (the REST share is in fuzz-rest). */
const SHARE = { native: 0.42, runtime: 0.33, control: 0.17 };
const BATCH = 1000;
/** Out of every batch, this many go over the real socket instead of straight to `webSocketMessage`. */
const OVER_SOCKET = 40;
/** Time allowed per test: generous on a loaded 2-core machine. */
const timeout = (frames: number) => 60_000 + frames * 3;

const tallies: Tally[] = [];
const consoleErrors: unknown[][] = [];
const unhandled: unknown[] = [];
const onUnhandled = (event: { reason?: unknown }) => void unhandled.push(event.reason);

let model: string;
let runtime: ScriptedRuntime;
let session: { sessionId: string; signal: Peer; runtimePeer: Peer };
/** Highest model message seq the client received, and command seq the runtime received. */
let lastMessage = 0;
let lastCommand = 0;

beforeAll(async () => {
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void consoleErrors.push(args));
  (globalThis as unknown as EventTarget).addEventListener("unhandledrejection", onUnhandled as EventListener);
  model = freshModel("fuzzed");
  runtime = await new ScriptedRuntime(model, "gpu-fuzz", 4).connect();
  // A nightly run outlasts SESSION_MAX_SECONDS (20 min): the fuzzed account's sessions may run a week.
  const account = freshAccount("fuzz");
  await setLimits(account, { max_session_seconds: 7 * 24 * 3600 });
  session = await activeNativeSession(model, runtime, await clientOf(account));
  await session.signal.sync();
});

afterAll(() => {
  (globalThis as unknown as EventTarget).removeEventListener("unhandledrejection", onUnhandled as EventListener);
  vi.restoreAllMocks();
  console.log([`fuzz (seed ${SEED}, FUZZ_FRAMES ${TOTAL}):`, ...tallies.map((tally) => `  ${tally.summary()}`)].join("\n"));
});

/** Frames the protocol module refuses: each must be answered with an error frame. */
const refusedBy = (schema: Schema<unknown>, raw: string | ArrayBuffer) => !decodeFrame(schema, raw).ok;

/** A valid frame the rightful peer would only send to end the session, or to spend its generation space: not sent. */
function endsTheSession(schema: Schema<unknown>, raw: string | ArrayBuffer, currentRuntime: string): boolean {
  const decoded = decodeFrame(schema, raw);
  if (!decoded.ok) return false;
  const frame = decoded.value as { type: string; generation?: number; runtime_id?: string };
  if (frame.type === "close" || frame.type === "release" || frame.type === "frame_error") return true; // frame_error: the runtime missed a frame, the session ends
  if (frame.type === "hello" && frame.runtime_id !== currentRuntime) return true; // an impostor's hello closes the socket (tested in session-bad-input)
  return frame.type === "offer" && (frame.generation ?? 0) > 990_000;
}

/** Runs `count` frames of `schema` in batches through `deliver`, checking each batch's answers with `collect`. */
async function fuzz(
  tally: Tally,
  schema: Schema<unknown>,
  count: number,
  deliver: (batch: Sample[], overSocket: Sample[]) => Promise<void>,
  collect: (expectedRejections: number) => Promise<Frame[]>,
  skip: (raw: string | ArrayBuffer) => boolean = () => false,
  answeredWithError: (raw: string | ArrayBuffer) => boolean = (raw) => refusedBy(schema, raw),
): Promise<void> {
  // Each run generates a few more frames than a batch: frames that would end the session are left out.
  const runs = Math.ceil(count / BATCH) + 2;
  const arbitrary = fc.array(samples(schema.json), { minLength: Math.ceil(BATCH * 1.3), maxLength: Math.ceil(BATCH * 1.3) });
  await fc.assert(
    fc.asyncProperty(arbitrary, async (generated) => {
      const batch = generated.filter((sample) => !skip(sample.raw)).slice(0, Math.min(BATCH, count - tally.frames));
      if (batch.length === 0) return;
      const overSocket = batch.splice(0, OVER_SOCKET);
      const expectedRejections = [...overSocket, ...batch].filter((sample) => answeredWithError(sample.raw)).length;
      await deliver(batch, overSocket);
      for (const sample of overSocket) tally.sent(sample, true);
      for (const sample of batch) tally.sent(sample);
      const answers = await collect(expectedRejections);
      const errors = answers.filter((frame) => frame.type === "error");
      for (const error of errors) tally.rejected(error.code);
      if (errors.length < expectedRejections) tally.problem(`${expectedRejections} frames to refuse, only ${errors.length} error answers`);
      expect(tally.problems).toEqual([]);
    }),
    { numRuns: runs, seed: SEED, endOnFailure: true },
  );
  tally.finish();
}

/** Hands each frame to the object's `webSocketMessage` with its real socket; a throw is a crash, reported with the frame. */
async function dispatch(stub: DurableObjectStub, tag: string | undefined, batch: Sample[]): Promise<void> {
  const crashes = await runInDurableObject(stub, async (object: SessionRelay | ModelPool, state: DurableObjectState) => {
    const ws = (tag ? state.getWebSockets(tag) : state.getWebSockets()).at(-1);
    if (!ws) throw new Error(`no ${tag ?? "control"} socket to fuzz`);
    const found: string[] = [];
    for (const sample of batch) {
      try {
        await object.webSocketMessage(ws, sample.raw);
      } catch (error) {
        found.push(`${show(sample.raw)} threw ${String(error)}`);
      }
    }
    return found;
  });
  expect(crashes).toEqual([]);
}

/** After a batch: the peers catch up the way real ones do (the client acknowledges messages, the runtime commands). */
function settle(answers: Frame[], side: "client" | "runtime"): void {
  if (side === "client") {
    for (const frame of answers) if (frame.type === "message") lastMessage = Math.max(lastMessage, frame.seq as number);
    if (lastMessage > 0) session.signal.send({ type: "ack", message_seq: lastMessage });
  } else {
    for (const frame of answers) if (frame.type === "command") lastCommand = Math.max(lastCommand, frame.seq as number);
    if (lastCommand > 0) session.runtimePeer.send({ type: "command_ack", seq: lastCommand });
  }
}

let barriers = 0;
/**
 * Everything the runtime's session socket received for the frames sent so far. The barrier is a frame the object
 * itself must refuse (an answer for a generation it never had, named uniquely), so it comes back after every answer
 * to what was sent before it. (A bare ping would not do: the runtime answers it without waiting for the object.)
 */
async function runtimeAnswers(): Promise<Frame[]> {
  const generation = 990_001 + (barriers++ % 9_000);
  session.runtimePeer.send({ type: "answer", generation, sdp: "barrier" });
  const answers = await session.runtimePeer.takeUntil(
    (frame) => frame.type === "error" && (frame.ref as { generation?: number } | undefined)?.generation === generation,
    30_000,
  );
  return answers.slice(0, -1);
}

/** The control socket's answers: an error for every refused frame (valid capacity frames get none; a heartbeat's
 * auto-response cannot serve as a barrier, the runtime sends it without waiting for the pool). */
async function controlAnswers(expectedRejections: number): Promise<Frame[]> {
  const errors = () => runtime.control.frames.filter((frame) => frame.type === "error").length;
  const deadline = Date.now() + 30_000;
  while (errors() < expectedRejections && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return runtime.control.frames.splice(0).filter((frame) => frame.type !== "heartbeat_ack" && frame.type !== "assign");
}

describe.sequential(`protocol fuzzing over the sockets (seed ${SEED})`, () => {
  const nativeFrames = Math.round(TOTAL * SHARE.native);
  it(`native signaling socket: ${nativeFrames} generated and mutated ClientFrames`, { timeout: timeout(nativeFrames) }, async () => {
    const tally = new Tally("native signaling socket (ClientFrame)", nativeFrames);
    tallies.push(tally);
    await fuzz(
      tally,
      ClientFrame,
      nativeFrames,
      async (batch, overSocket) => {
        for (const sample of overSocket) session.signal.ws.send(sample.raw);
        await dispatch(sessionStub(session.sessionId), "client", batch);
      },
      async () => {
        const answers = await session.signal.sync(30_000);
        settle(answers, "client");
        settle(session.runtimePeer.frames.splice(0), "runtime"); // offers, candidates and commands the valid frames caused
        await runtime.heartbeat(); // the pool's watchdog runs on real time
        return answers;
      },
      (raw) => endsTheSession(ClientFrame, raw, "gpu-fuzz"),
    );
    expect(session.signal.closed).toBeNull();
  });

  const runtimeFrames = Math.round(TOTAL * SHARE.runtime);
  it(`runtime session socket: ${runtimeFrames} generated and mutated RuntimeSessionFrames`, { timeout: timeout(runtimeFrames) }, async () => {
    const tally = new Tally("runtime session socket (RuntimeSessionFrame)", runtimeFrames);
    tallies.push(tally);
    await fuzz(
      tally,
      RuntimeSessionFrame,
      runtimeFrames,
      async (batch, overSocket) => {
        for (const sample of overSocket) session.runtimePeer.ws.send(sample.raw);
        await dispatch(sessionStub(session.sessionId), "runtime", batch);
      },
      async () => {
        const answers = await runtimeAnswers();
        settle(answers, "runtime");
        const generation = ((await sessionStore(session.sessionId)).record!.generation as number) || 1;
        // A valid peer_state may have reported the client gone: the runtime reports it back before grace matters.
        session.runtimePeer.send({ type: "peer_state", generation, state: "connected" });
        settle(await session.signal.sync(30_000), "client");
        await runtime.heartbeat();
        return answers;
      },
      (raw) => endsTheSession(RuntimeSessionFrame, raw, "gpu-fuzz"),
    );
    expect(session.runtimePeer.closed).toBeNull();
  });

  it("afterwards the session works end to end for its rightful peers", async () => {
    const { signal, runtimePeer, sessionId } = session;
    const record = (await sessionStore(sessionId)).record!;
    const generation = (record.generation as number) + 1;
    signal.send({ type: "offer", generation, sdp: OFFER });
    await runtimePeer.next((frame) => frame.type === "offer" && frame.generation === generation);
    runtimePeer.send({ type: "answer", generation, sdp: ANSWER });
    expect(await signal.next((frame) => frame.type === "answer" && frame.generation === generation)).toMatchObject({ sdp: ANSWER });
    runtimePeer.send({ type: "peer_state", generation, state: "connected" });
    await expect.poll(async () => (await sessionStore(sessionId)).record!.state, POLL).toBe("ACTIVE");

    const seq = record.nextCommandSeq as number;
    signal.send(command(seq));
    await runtimePeer.next((frame) => frame.type === "command" && frame.seq === seq);
    runtimePeer.send({ type: "command_ack", seq });
    await signal.next(commandStatus(seq, "acknowledged"));

    const message = lastMessage + 1;
    runtimePeer.send({ type: "message", seq: message, scope: "application", data: { after: "fuzz" } });
    expect(await signal.next((frame) => frame.type === "message" && frame.seq === message)).toMatchObject({ data: { after: "fuzz" } });
    expect(signal.closed).toBeNull();
    expect(runtimePeer.closed).toBeNull();
  });

  const controlFrames = Math.round(TOTAL * SHARE.control);
  it(`runtime control socket: ${controlFrames} generated and mutated RuntimeControlFrames; the pool still assigns`, {
    timeout: timeout(controlFrames),
  }, async () => {
    const tally = new Tally("runtime control socket (RuntimeControlFrame)", controlFrames);
    tallies.push(tally);
    await fuzz(
      tally,
      RuntimeControlFrame,
      controlFrames,
      async (batch, overSocket) => {
        for (const sample of overSocket) runtime.control.ws.send(sample.raw);
        await dispatch(poolStub(model), undefined, batch);
      },
      async (expectedRejections) => {
        const answers = await controlAnswers(expectedRejections);
        // A valid capacity frame is the runtime's own business: it restores its slots after each batch.
        runtime.control.send({ type: "capacity", slots: 4 });
        await runtime.heartbeat();
        return answers;
      },
      () => false,
      // Refused by the schema, or a register on a socket that is registered already: an error answer each.
      (raw) =>
        refusedBy(RuntimeControlFrame, raw) || (decodeFrame(RuntimeControlFrame, raw) as { value?: { type: string } }).value?.type === "register",
    );
    expect(runtime.control.closed).toBeNull();
    const { session_id } = await createSession(await newClient(), model);
    expect((await runtime.acceptAssignment()).sessionId).toBe(session_id);
    // And the fuzzed session still runs.
    expect((await sessionStore(session.sessionId)).record!.state).toBe("ACTIVE");
  });

  it("nothing crashed and nothing was left unhandled", async () => {
    await session.signal.sync();
    expect(unhandled).toEqual([]);
    expect(consoleErrors.map((args) => args.map(String).join(" "))).toEqual([]);
    expect(tallies.reduce((sum, tally) => sum + tally.frames, 0)).toBe(
      Math.round(TOTAL * SHARE.native) + Math.round(TOTAL * SHARE.runtime) + Math.round(TOTAL * SHARE.control),
    );
  });
});
