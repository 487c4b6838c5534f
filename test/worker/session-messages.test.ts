/**
 * Model messages (runtime → client) kept without a storage write while the client is connected: the runtime keeps
 * each message until the gateway's `message_ack`, and the gateway acknowledges only what is safe (stored, or
 * acknowledged by the client). Exactly once and in order, as the client sees them after deduplicating by seq,
 * across client drops, runtime drops, and evictions of the session object with the client connected or away.
 *
 * The client side is an `Inbox`: it keeps a message if its seq is the next one, ignores one it already has, and
 * records a gap (a lost message) otherwise. "Lost" below means a frame the client never processed: frames still
 * queued on its socket when it drops are thrown away.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  activeNativeSession,
  command,
  commandStatus,
  createSession,
  freshModel,
  isStatus,
  negotiate,
  newClient,
  openSignal,
  ScriptedRuntime,
  sessionStub,
  stateOf,
  type Frame,
  type Peer,
} from "./scripted.ts";

const message = (seq: number, data: unknown = { n: seq }) => ({ type: "message" as const, seq, scope: "application", data });
const isMessage = (frame: Frame) => frame.type === "message";
const messageAck = (seq: number) => (frame: Frame) => frame.type === "message_ack" && frame.seq === seq;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** What a client does with `message` frames: keep the next seq, ignore one it has, note a gap. */
class Inbox {
  last = 0;
  readonly seqs: number[] = [];
  readonly data: unknown[] = [];
  duplicates = 0;
  readonly gaps: string[] = [];

  take(frames: Frame[]): void {
    for (const frame of frames.filter(isMessage)) {
      const seq = frame.seq as number;
      if (seq <= this.last) this.duplicates++;
      else if (seq === this.last + 1) {
        this.last = seq;
        this.seqs.push(seq);
        this.data.push(frame.data);
      } else this.gaps.push(`got ${seq} after ${this.last}`);
    }
  }

  /** Processes frames from `signal` until it has every message up to `seq`. */
  async receive(signal: Peer, seq: number): Promise<void> {
    while (this.last < seq) {
      this.take(await signal.takeUntil(isMessage));
      if (this.gaps.length > 0) throw new Error(`messages lost: ${this.gaps.join(", ")}`);
    }
  }
}

/** The session object's stored record and message rows, read inside it. */
async function storedState(sessionId: string): Promise<{ messageSeq: number; record: unknown; rows: number[] }> {
  return runInDurableObject(sessionStub(sessionId), (_instance: unknown, state: DurableObjectState) => {
    const record = state.storage.kv.get<{ messageSeq: number }>("session")!;
    const rows = state.storage.sql
      .exec<{ seq: number }>("SELECT seq FROM messages ORDER BY seq")
      .toArray()
      .map((row) => row.seq);
    return { messageSeq: record.messageSeq, record, rows };
  });
}

/**
 * Rows the session object's SQLite connection has inserted, updated or deleted since it opened (`total_changes()`,
 * which counts the key-value API's writes too): a write counter, valid while the object is not evicted.
 */
async function rowWrites(sessionId: string): Promise<number> {
  return runInDurableObject(
    sessionStub(sessionId),
    (_instance: unknown, state: DurableObjectState) => state.storage.sql.exec<{ n: number }>("SELECT total_changes() AS n").one().n,
  );
}

/** A client socket drops: whatever it had not processed yet is lost with it. */
async function dropClient(signal: Peer, client: { jwt: string; account: string }, sessionId: string): Promise<void> {
  signal.close(4001, "network lost");
  signal.frames.length = 0;
  await expect.poll(() => stateOf(client, sessionId), { timeout: 5000 }).toBe("RECONNECTING");
}

describe("no storage write per model message while the client is connected", () => {
  it("N messages leave no message rows and the stored record untouched; the client's ack goes out with the next write", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    await signal.sync();
    const before = await storedState(sessionId);
    expect(before).toMatchObject({ messageSeq: 0, rows: [] });
    const writesBefore = await rowWrites(sessionId);

    const N = 50;
    for (let seq = 1; seq <= N; seq++) runtimePeer.send(message(seq));
    const inbox = new Inbox();
    await inbox.receive(signal, N);
    expect(inbox.seqs).toEqual(range(1, N));

    expect(await rowWrites(sessionId)).toBe(writesBefore); // not one row written for 50 messages
    const after = await storedState(sessionId);
    expect(after.rows).toEqual([]);
    expect(after.messageSeq).toBe(0);
    expect(after.record).toEqual(before.record); // not rewritten at all
    // Nothing was acknowledged to the runtime: it still holds all of them.
    expect(runtimePeer.frames.filter((frame) => frame.type === "message_ack")).toEqual([]);
    expect(runtimePeer.outbox.kept.size).toBe(N);

    // The client's acknowledgement is written with the next write (here a command), then passed on.
    signal.send({ type: "ack", message_seq: 40 });
    await signal.sync();
    expect((await storedState(sessionId)).messageSeq).toBe(0);
    signal.send(command(1));
    await runtimePeer.next(messageAck(40));
    expect((await storedState(sessionId)).messageSeq).toBe(40);
    expect([...runtimePeer.outbox.kept.keys()]).toEqual(range(41, N));
    await signal.next(commandStatus(1, "delivered"));
  });
});

describe("exactly once and in order", () => {
  it("(a) across a client drop and return: unacknowledged messages kept in memory are stored when the socket closes", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const inbox = new Inbox();

    for (let seq = 1; seq <= 10; seq++) runtimePeer.send(message(seq));
    await inbox.receive(signal, 6); // 7…10 are still queued: lost with the socket
    signal.send({ type: "ack", message_seq: 4 });
    await dropClient(signal, client, sessionId);
    // The socket's close stored 5…10 (one write) and acknowledged them to the runtime.
    await runtimePeer.next(messageAck(10));
    expect((await storedState(sessionId)).rows).toEqual(range(5, 10));

    for (let seq = 11; seq <= 15; seq++) runtimePeer.send(message(seq)); // client away: stored, acknowledged
    await runtimePeer.next(messageAck(15));
    expect(runtimePeer.outbox.kept.size).toBe(0);

    const again = await openSignal(client, sessionId);
    expect(await again.next("welcome")).toMatchObject({ message_seq: 15 });
    await inbox.receive(again, 15);
    runtimePeer.send(message(16));
    await inbox.receive(again, 16);
    again.send({ type: "ack", message_seq: 16 });
    inbox.take(await again.sync());

    expect(inbox.seqs).toEqual(range(1, 16));
    expect(inbox.gaps).toEqual([]);
    expect(inbox.duplicates).toBe(2); // 5 and 6, stored unacknowledged and resent
    expect((await storedState(sessionId)).rows).toEqual([]); // the ack deleted them
  });

  it("(b) across a runtime drop and return: the runtime resends what the gateway does not have, nothing twice", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const inbox = new Inbox();

    for (let seq = 1; seq <= 5; seq++) runtimePeer.send(message(seq));
    await inbox.receive(signal, 5);
    await runtime.dropSession(sessionId);
    await signal.next(isStatus("RECONNECTING"));
    // Produced while its socket was down (or lost in flight): kept by the runtime.
    for (let seq = 6; seq <= 8; seq++) runtime.sendMessage(sessionId, message(seq));

    const back = await runtime.openSession(sessionId);
    await inbox.receive(signal, 8);
    expect(back.outbox.resent).toBe(3); // 6…8, after `session { message_seq: 5 }`
    for (let seq = 9; seq <= 10; seq++) back.send(message(seq));
    await inbox.receive(signal, 10);
    inbox.take(await signal.sync());

    expect(inbox.seqs).toEqual(range(1, 10));
    expect(inbox.duplicates).toBe(0);
    expect(inbox.gaps).toEqual([]);
  });

  it("(c) eviction while the client is connected, then its socket drops and it reconnects having lost some", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const inbox = new Inbox();

    for (let seq = 1; seq <= 10; seq++) runtimePeer.send(message(seq));
    await inbox.receive(signal, 7); // 8…10 will be lost with the socket
    signal.send({ type: "ack", message_seq: 4 });
    signal.send(command(1)); // a record write: 4 is now safe, and acknowledged to the runtime
    await runtimePeer.next(messageAck(4));

    await evictDurableObject(sessionStub(sessionId)); // the gateway's copies of 5…10 are gone; the runtime has them
    await dropClient(signal, client, sessionId);
    // The close, seen by the fresh object: it asks the runtime for everything after the safe point, and stores it.
    expect(await runtimePeer.next("resend_messages")).toEqual({ type: "resend_messages", from_seq: 5 });
    await runtimePeer.next(messageAck(10));

    const again = await openSignal(client, sessionId);
    again.send({ type: "ack", message_seq: 7 }); // the client says how far it got
    await inbox.receive(again, 10);
    runtimePeer.send(message(11));
    await inbox.receive(again, 11);
    inbox.take(await again.sync());

    expect(inbox.seqs).toEqual(range(1, 11));
    expect(inbox.gaps).toEqual([]);
    expect(runtimePeer.frames.filter((frame) => frame.type === "error")).toEqual([]);
  });

  it("(c) eviction while the client is connected, then a new socket replaces the old one before it closes", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const inbox = new Inbox();

    for (let seq = 1; seq <= 10; seq++) runtimePeer.send(message(seq));
    await inbox.receive(signal, 3);
    signal.frames.length = 0; // 4…10 lost: the client moved to a new socket

    await evictDurableObject(sessionStub(sessionId));
    const again = await openSignal(client, sessionId); // the old socket is still open: its close will not count
    await signal.waitClosed();
    again.send({ type: "ack", message_seq: 3 });
    expect(await runtimePeer.next("resend_messages")).toEqual({ type: "resend_messages", from_seq: 1 });
    await inbox.receive(again, 10);
    runtimePeer.send(message(11));
    await inbox.receive(again, 11);

    expect(inbox.seqs).toEqual(range(1, 11));
    expect(inbox.gaps).toEqual([]);
  });

  it("(c) eviction while the client stays connected: the next message looks like a gap, and the runtime resends", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const inbox = new Inbox();
    for (let seq = 1; seq <= 5; seq++) runtimePeer.send(message(seq));
    await inbox.receive(signal, 5);

    await evictDurableObject(sessionStub(sessionId));
    for (let seq = 6; seq <= 8; seq++) runtimePeer.send(message(seq));
    expect(await runtimePeer.next("resend_messages")).toEqual({ type: "resend_messages", from_seq: 1 });
    await inbox.receive(signal, 8);
    inbox.take(await signal.sync());

    expect(inbox.seqs).toEqual(range(1, 8));
    expect(inbox.gaps).toEqual([]);
    expect(inbox.duplicates).toBe(5); // 1…5 again: the client dedupes
    // Expected after an eviction: no MESSAGE_SEQ_GAP error, and one request for all the messages 7 and 8 overtook.
    expect(runtimePeer.frames.filter((frame) => frame.type === "error" || frame.type === "resend_messages")).toEqual([]);
  });

  it("(d) eviction while the client is away: stored messages and those after the eviction all arrive", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const inbox = new Inbox();

    for (let seq = 1; seq <= 5; seq++) runtimePeer.send(message(seq));
    await inbox.receive(signal, 3);
    signal.send({ type: "ack", message_seq: 2 });
    await dropClient(signal, client, sessionId);
    for (let seq = 6; seq <= 8; seq++) runtimePeer.send(message(seq));
    await runtimePeer.next(messageAck(8));

    await evictDurableObject(sessionStub(sessionId));
    for (let seq = 9; seq <= 10; seq++) runtimePeer.send(message(seq));
    await runtimePeer.next(messageAck(10));
    await evictDurableObject(sessionStub(sessionId));
    expect((await storedState(sessionId)).rows).toEqual(range(3, 10));

    const again = await openSignal(client, sessionId);
    expect(await again.next("welcome")).toMatchObject({ message_seq: 10 });
    await inbox.receive(again, 10);
    runtimePeer.send(message(11));
    await inbox.receive(again, 11);
    inbox.take(await again.sync());

    expect(inbox.seqs).toEqual(range(1, 11));
    expect(inbox.gaps).toEqual([]);
    expect(runtimePeer.frames.filter((frame) => frame.type === "error")).toEqual([]);
  });

  it("(e) messages from before the client ever connected, across a runtime reconnect and an eviction", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, model);
    const { peer: runtimePeer } = await runtime.acceptAssignment();

    for (let seq = 1; seq <= 10; seq++) runtimePeer.send(message(seq));
    await runtimePeer.next(messageAck(10));
    await runtime.dropSession(sessionId);
    for (let seq = 11; seq <= 12; seq++) runtime.sendMessage(sessionId, message(seq));
    await evictDurableObject(sessionStub(sessionId));
    const back = await runtime.openSession(sessionId);
    await back.next(messageAck(12));
    expect((await storedState(sessionId)).rows).toEqual(range(1, 12));

    const signal = await openSignal(client, sessionId);
    const inbox = new Inbox();
    await inbox.receive(signal, 12);
    await negotiate(signal, back);
    back.send(message(13));
    await inbox.receive(signal, 13);
    inbox.take(await signal.sync());

    expect(inbox.seqs).toEqual(range(1, 13));
    expect(inbox.duplicates).toBe(0);
    expect(inbox.gaps).toEqual([]);
  });

  it("a full buffer refuses messages without losing them: the runtime is asked again once the client makes room", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const inbox = new Inbox();
    // 200 KB each: the 21st goes past MESSAGE_BUFFER_BYTES (4 MiB) while the client acknowledges nothing.
    const big = (seq: number) => message(seq, { seq, blob: "x".repeat(200_000) });
    for (let seq = 1; seq <= 24; seq++) runtimePeer.send(big(seq));

    expect(await runtimePeer.next("error")).toMatchObject({ code: "MESSAGE_BUFFER_FULL", ref: { seq: 21 } });
    await inbox.receive(signal, 20);
    signal.send({ type: "ack", message_seq: 20 });
    expect(await runtimePeer.next("resend_messages")).toEqual({ type: "resend_messages", from_seq: 21 });
    await inbox.receive(signal, 24);
    inbox.take(await signal.sync());

    expect(inbox.seqs).toEqual(range(1, 24));
    expect(inbox.gaps).toEqual([]);
    expect((await storedState(sessionId)).rows).toEqual([]);
  });
});
