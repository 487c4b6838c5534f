/**
 * A restarted session (INACTIVE → `PUT /sessions/{id}` → a runtime again) keeps one message numbering for its
 * client across runs, whatever the new run's runtime does: runtime seqs are per run (each run's runtime numbers
 * from 1, and is told `session.message_seq: 0`), client seqs go on after the last message of earlier runs.
 */
import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  activeNativeSession,
  freshModel,
  getJson,
  isStatus,
  negotiate,
  openSignal,
  ScriptedRuntime,
  sessionStub,
  type Frame,
  type Peer,
} from "./scripted.ts";

const message = (seq: number, data: unknown = { n: seq }) => ({ type: "message" as const, seq, scope: "application", data });
const messageSeqs = (frames: Frame[]) => frames.filter((frame) => frame.type === "message").map((frame) => frame.seq as number);

/** Takes message frames from `signal` until it has seen `seq`; returns every message seq it took, in order. */
async function messagesUntil(signal: Peer, seq: number): Promise<Frame[]> {
  return signal.takeUntil((frame) => frame.type === "message" && frame.seq === seq);
}

/** A session taken to ACTIVE, `n` messages delivered and acknowledged, then ended INACTIVE by its runtime. */
async function inactiveAfter(n: number, options: { ack: boolean }) {
  const model = freshModel();
  const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
  const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
  for (let seq = 1; seq <= n; seq++) runtimePeer.send(message(seq));
  expect(messageSeqs(await messagesUntil(signal, n))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  if (options.ack) signal.send({ type: "ack", message_seq: n });
  await signal.sync();
  runtimePeer.send({ type: "release", reason: "model restarted" });
  await signal.next(isStatus("INACTIVE"));
  await signal.waitClosed();
  return { model, runtime, client, sessionId };
}

/** Restarts the session; the same runtime process serves the new run with a fresh outbox (a new ServedSession). */
async function restart(runtime: ScriptedRuntime, client: Parameters<typeof openSignal>[0], sessionId: string) {
  const restarted = await getJson(client, `/sessions/${sessionId}`, { method: "PUT" });
  expect(restarted.status).toBe(200);
  runtime.outboxes.delete(sessionId); // the previous run's ServedSession ended with it
  const { peer: runtimePeer } = await runtime.acceptAssignment();
  const signal = await openSignal(client, sessionId);
  return { runtimePeer, signal };
}

describe("restart of an INACTIVE session: the new run's messages reach the client", () => {
  it("runtime messages 1..k of the new run arrive as client seqs N+1..N+k, each once", async () => {
    const N = 7;
    const { runtime, client, sessionId } = await inactiveAfter(N, { ack: true });
    const { runtimePeer, signal } = await restart(runtime, client, sessionId);
    // The new runtime is told this run's numbering: nothing yet.
    expect(runtimePeer.session).toMatchObject({ message_seq: 0 });
    expect(await signal.next("welcome")).toMatchObject({ message_seq: N });
    await negotiate(signal, runtimePeer, 2);

    const k = 5;
    for (let seq = 1; seq <= k; seq++) runtimePeer.send(message(seq, { run: 2, n: seq }));
    const frames = (await messagesUntil(signal, N + k)).filter((frame) => frame.type === "message");
    expect(frames.map((frame) => frame.seq)).toEqual([8, 9, 10, 11, 12]);
    expect(frames.map((frame) => frame.data)).toEqual([1, 2, 3, 4, 5].map((n) => ({ run: 2, n })));

    // Acknowledgements to the runtime are in its own numbering: the client's ack of 10 is run seq 3.
    signal.send({ type: "ack", message_seq: N + 3 });
    signal.send({ type: "command", seq: 1, command: { type: "set_prompt", data: {} } }); // a record write
    expect(await runtimePeer.next("message_ack")).toEqual({ type: "message_ack", seq: 3 });
    expect([...runtimePeer.outbox.kept.keys()]).toEqual([4, 5]);
  });

  it("unacknowledged messages of the previous run come first, then the new run's, across an eviction and a runtime reconnect", async () => {
    const N = 4;
    const { runtime, client, sessionId } = await inactiveAfter(N, { ack: false });
    const { runtimePeer, signal } = await restart(runtime, client, sessionId);
    expect(await signal.next("welcome")).toMatchObject({ message_seq: N });
    expect(messageSeqs(await messagesUntil(signal, N))).toEqual([1, 2, 3, 4]); // stored at the end, resent
    await negotiate(signal, runtimePeer, 2);
    for (let seq = 1; seq <= 3; seq++) runtimePeer.send(message(seq));
    expect(messageSeqs(await messagesUntil(signal, N + 3))).toEqual([5, 6, 7]);

    // The object forgets what it kept in memory; the runtime's socket drops; it returns and resends from the
    // run seq the gateway names (its `session.message_seq` is in the run's numbering too).
    await evictDurableObject(sessionStub(sessionId));
    await runtime.dropSession(sessionId);
    runtime.sendMessage(sessionId, message(4));
    const back = await runtime.openSession(sessionId);
    expect(back.session).toMatchObject({ message_seq: 0 }); // the stored safe point is where run 2 began
    const resent = messageSeqs(await messagesUntil(signal, N + 4));
    expect(resent.filter((seq) => seq > N + 3)).toEqual([8]);
    expect(resent.every((seq) => seq > N)).toBe(true); // never a number of the previous run again
  });
});
