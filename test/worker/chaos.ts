/**
 * The session chaos driver: one native client (the SDK's own CommandQueue for commands, an inbox that dedupes model
 * messages by seq like the SDK's) and one runtime (processes each command once, acknowledges cumulatively, keeps
 * its messages in an outbox until acknowledged), both on real sockets to the real session object, while a script
 * of random actions makes either side drop abruptly (frames in flight lost), overflows the command buffer while the
 * runtime is away, and restarts the session after its runtime releases it (INACTIVE → PUT → a new run).
 *
 * `check()` then brings both sides back and verifies, at both ends: every command the client sent reached the
 * runtime exactly once and in order, or was reported dropped/replaced to the client — and never acknowledged —;
 * every model message of every run reached the client exactly once, in order.
 */
import { expect } from "vitest";
import type { ClientFrame } from "../../protocol/signaling.ts";
import { CommandQueue, type CommandHandle, type CommandPolicy } from "../../sdk/src/command-queue.ts";
import {
  activeNativeSession,
  ANSWER,
  getJson,
  OFFER,
  openSignal,
  ScriptedRuntime,
  stateOf,
  type ClientAccount,
  type Frame,
  type Peer,
  type RuntimeSessionPeer,
} from "./scripted.ts";

export type ChaosAction =
  | { kind: "command"; policy: CommandPolicy; type: "set_prompt" | "set_mode" }
  | { kind: "message" }
  | { kind: "pumpClient" }
  | { kind: "pumpRuntime" }
  | { kind: "dropClient" }
  /** The client reconnects on a new socket while the gateway still holds its old one (it never saw it drop). */
  | { kind: "replaceClient" }
  /** The same for the runtime's session socket. */
  | { kind: "replaceRuntime" }
  | { kind: "reconnectClient" }
  | { kind: "dropRuntime" }
  | { kind: "reconnectRuntime" }
  | { kind: "overflow" }
  | { kind: "restart" };

const FINAL = new Set(["acknowledged", "dropped", "replaced"]);
const POLL = { timeout: 10_000, interval: 20 };

export class Chaos {
  readonly log: string[] = [];
  readonly #model: string;
  readonly #runtime: ScriptedRuntime;
  readonly #client: ClientAccount;
  readonly #sessionId: string;
  // Client side.
  readonly #queue = new CommandQueue();
  readonly #handles: CommandHandle[] = [];
  #signal: Peer | undefined;
  #generation = 1;
  /** Highest message seq processed in order; the data (`g`) of each, in the order processed. */
  #inboxLast = 0;
  #inboxAcked = 0;
  readonly received: number[] = [];
  readonly #problems: string[] = [];
  // Runtime side.
  #runtimePeer: RuntimeSessionPeer | undefined;
  /** Every command seq the runtime ran, in order (each once). */
  readonly processed: number[] = [];
  #runProcessed = 0;
  #runSeq = 0;
  /** The peer connection generation the runtime answered last (0: none this run). */
  #answered = 0;
  /** Messages emitted so far (their `g`: 1, 2, 3… across runs). */
  #emitted = 0;
  #overflowed = false;
  restarts = 0;

  private constructor(model: string, runtime: ScriptedRuntime, client: ClientAccount, sessionId: string) {
    this.#model = model;
    this.#runtime = runtime;
    this.#client = client;
    this.#sessionId = sessionId;
  }

  static async start(model: string): Promise<Chaos> {
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const chaos = new Chaos(model, runtime, client, sessionId);
    chaos.#signal = signal;
    chaos.#runtimePeer = runtimePeer;
    chaos.#queue.attach(chaos.#sender(signal), 1);
    return chaos;
  }

  async run(action: ChaosAction): Promise<void> {
    this.log.push(action.kind + ("policy" in action ? `:${action.policy}:${action.type}` : ""));
    switch (action.kind) {
      case "command":
        this.#handles.push(this.#queue.submit(action.type, { n: this.#handles.length + 1 }, action.policy));
        return;
      case "message":
        return this.#emit();
      case "pumpClient":
        if (this.#signal) this.#takeClient(await this.#signal.sync());
        return;
      case "pumpRuntime":
        return this.#pumpRuntime();
      case "dropClient":
        return this.#dropClient();
      case "reconnectClient":
        if (!this.#signal) await this.#connectClient();
        return;
      case "replaceClient":
        return this.#replaceClient();
      case "replaceRuntime":
        return this.#replaceRuntime();
      case "dropRuntime":
        return this.#dropRuntime();
      case "reconnectRuntime":
        if (!this.#runtimePeer) await this.#connectRuntime();
        return;
      case "overflow":
        return this.#overflow();
      case "restart":
        return this.#restart();
    }
  }

  /** Both sides back, ACTIVE, everything settled; then the end-to-end checks. */
  async check(): Promise<void> {
    if (!this.#runtimePeer) await this.#connectRuntime();
    if (!this.#signal) await this.#connectClient();
    const ready = Date.now() + POLL.timeout;
    while ((await stateOf(this.#client, this.#sessionId)) !== "ACTIVE") {
      if (Date.now() > ready) throw new Error(`not ACTIVE: ${await stateOf(this.#client, this.#sessionId)}`);
      await this.#pumpRuntime();
      this.#takeClient(await this.#signal!.sync());
    }
    const deadline = Date.now() + 15_000;
    while (this.#handles.some((handle) => !FINAL.has(handle.state)) || this.#inboxLast < this.#clientSeqOfLast()) {
      if (Date.now() > deadline) {
        const open = this.#handles.filter((handle) => !FINAL.has(handle.state)).map((handle) => `${handle.seq}:${handle.state}`);
        throw new Error(`not settled: commands ${open.join(",")}; messages ${this.received.length}/${this.#emitted}; ${this.#problems.join("; ")}`);
      }
      await this.#pumpRuntime();
      this.#takeClient(await this.#signal!.sync());
    }
    await this.#pumpRuntime();
    expect(this.#problems).toEqual([]);

    // Commands: the runtime ran each at most once, in order; exactly those the client was told were acknowledged.
    expect(this.processed).toEqual([...new Set(this.processed)].sort((a, b) => a - b));
    const acknowledged = this.#handles.filter((handle) => handle.state === "acknowledged").map((handle) => handle.seq!);
    const notDelivered = this.#handles.filter((handle) => handle.state !== "acknowledged");
    expect(this.processed).toEqual(acknowledged);
    for (const handle of notDelivered) {
      expect(["dropped", "replaced"]).toContain(handle.state);
      if (handle.seq !== undefined) expect(this.processed).not.toContain(handle.seq);
    }
    // Messages: every one of every run, once, in order.
    expect(this.received).toEqual(Array.from({ length: this.#emitted }, (_, i) => i + 1));
  }

  summary(): string {
    const states = new Map<string, number>();
    for (const handle of this.#handles) states.set(handle.state, (states.get(handle.state) ?? 0) + 1);
    return `${this.#handles.length} commands (${[...states].map(([state, n]) => `${n} ${state}`).join(", ")}), ${this.#emitted} messages, ${this.restarts} restarts`;
  }

  // ── Client ─────────────────────────────────────────────────────────────────────────────────────────────────

  #sender(signal: Peer): (frame: ClientFrame) => boolean {
    return (frame) => {
      if (signal.closed || signal !== this.#signal) return false;
      signal.send(frame);
      return true;
    };
  }

  /** What the SDK does with server frames: statuses into the queue, messages deduped, a gap error resends. */
  #takeClient(frames: Frame[]): void {
    for (const frame of frames) {
      if (frame.type === "command_status") this.#queue.onStatus(frame.seq as number, frame.state as never, frame.error as string | undefined);
      else if (frame.type === "message") {
        const seq = frame.seq as number;
        if (seq === this.#inboxLast + 1) {
          this.#inboxLast = seq;
          this.received.push((frame.data as { g: number }).g);
        } else if (seq > this.#inboxLast + 1) this.#problems.push(`message gap: got ${seq} after ${this.#inboxLast}`);
      } else if (frame.type === "error" && frame.code === "COMMAND_SEQ_GAP") {
        this.#queue.resendFrom((frame.ref as { expected: number }).expected);
      } else if (frame.type === "error" && !["COMMAND_BUFFER_FULL", "COMMAND_REPLAYED", "SESSION_ENDED"].includes(frame.code as string)) {
        this.#problems.push(`client got error ${frame.code}: ${frame.message}`);
      }
    }
    // Acknowledge as it goes, like the SDK's inbox.
    if (this.#signal && !this.#signal.closed && this.#inboxLast > this.#inboxAcked) {
      this.#signal.send({ type: "ack", message_seq: this.#inboxLast });
      this.#inboxAcked = this.#inboxLast;
    }
  }

  async #dropClient(): Promise<void> {
    const signal = this.#signal;
    if (!signal) return;
    this.#signal = undefined;
    this.#queue.detach();
    signal.close(4100, "network lost");
    signal.frames.length = 0; // in flight: lost with the socket
    await signal.waitClosed().catch(() => undefined);
  }

  async #replaceClient(): Promise<void> {
    const old = this.#signal;
    if (!old) return this.#connectClient();
    this.#signal = undefined;
    this.#queue.detach();
    await this.#connectClient(); // the gateway closes the old socket (4000) as it takes the new one
    old.frames.length = 0;
  }

  async #replaceRuntime(): Promise<void> {
    const old = this.#runtimePeer;
    this.#runtimePeer = undefined;
    if (old) old.frames.length = 0;
    await this.#connectRuntime(); // the gateway closes the old socket (4000) as it takes the new one
    if (old) old.frames.length = 0;
  }

  async #connectClient(): Promise<void> {
    const signal = await openSignal(this.#client, this.#sessionId);
    const welcome = await signal.next("welcome");
    this.#signal = signal;
    this.#inboxAcked = Math.min(this.#inboxAcked, welcome.message_seq as number);
    this.#takeClient(await signal.sync()); // status, replayed command states, stored messages
    this.#queue.attach(this.#sender(signal), welcome.next_command_seq as number);
    const state = await stateOf(this.#client, this.#sessionId);
    if (state === "WAITING") await this.#offer(); // a new run: a new peer connection
  }

  async #offer(): Promise<void> {
    this.#generation++;
    this.#signal!.send({ type: "offer", generation: this.#generation, sdp: OFFER });
    if (this.#runtimePeer) await this.#pumpRuntime();
  }

  // ── Runtime ────────────────────────────────────────────────────────────────────────────────────────────────

  #emit(): void {
    this.#emitted++;
    this.#runSeq++;
    this.#runtime.sendMessage(this.#sessionId, { type: "message", seq: this.#runSeq, scope: "application", data: { g: this.#emitted } });
  }

  /** The runtime's frames: commands run once each (acknowledged cumulatively), offers answered and connected. */
  async #pumpRuntime(): Promise<void> {
    const peer = this.#runtimePeer;
    if (!peer || peer.closed) return;
    // A command, or an offer, may still be on its way: a round trip through the client's socket orders it.
    if (this.#signal && !this.#signal.closed) this.#takeClient(await this.#signal.sync());
    for (const frame of peer.frames.splice(0)) {
      if (frame.type === "command") {
        const seq = frame.seq as number;
        const last = this.processed.at(-1) ?? 0;
        if (seq > last) {
          this.processed.push(seq);
          this.#runProcessed = seq;
        }
        if (this.#runProcessed > 0) peer.send({ type: "command_ack", seq: this.#runProcessed });
      } else if (frame.type === "offer") {
        peer.send({ type: "answer", generation: frame.generation, sdp: ANSWER });
        peer.send({ type: "peer_state", generation: frame.generation, state: "connected" });
        this.#answered = Math.max(this.#answered, frame.generation as number);
      } else if (frame.type === "error" && frame.code !== "STALE_GENERATION") {
        this.#problems.push(`runtime got error ${frame.code}: ${frame.message}`);
      }
    }
  }

  async #dropRuntime(): Promise<void> {
    const peer = this.#runtimePeer;
    if (!peer) return;
    this.#runtimePeer = undefined;
    peer.frames.length = 0; // in flight: lost with the socket
    await this.#runtime.dropSession(this.#sessionId);
  }

  /** Like the agent: after a (re)connect, the state of the peer connection it answered is reported again. */
  async #connectRuntime(): Promise<void> {
    this.#runtimePeer = await this.#runtime.openSession(this.#sessionId, this.#runProcessed);
    if (this.#answered > 0) this.#runtimePeer.send({ type: "peer_state", generation: this.#answered, state: "connected" });
  }

  /** 260 commands while the runtime is away: the gateway buffers 256, drops the rest (COMMAND_BUFFER_FULL). */
  async #overflow(): Promise<void> {
    if (this.#overflowed) return;
    this.#overflowed = true;
    await this.#dropRuntime();
    if (!this.#signal) await this.#connectClient();
    for (let i = 0; i < 260; i++) this.#handles.push(this.#queue.submit("set_prompt", { burst: i }, "buffer"));
  }

  /** The runtime releases the session (INACTIVE); the client restarts it; a new run's runtime numbers from 1. */
  async #restart(): Promise<void> {
    if (!this.#runtimePeer || !this.#signal) return;
    await this.#pumpRuntime();
    this.#runtimePeer.send({ type: "release", reason: "chaos restart" });
    await this.#runtimePeer.waitClosed();
    this.#runtimePeer = undefined;
    this.#runtime.sessions.delete(this.#sessionId);
    await expect.poll(() => stateOf(this.#client, this.#sessionId), POLL).toBe("INACTIVE");
    // The client reads what the gateway said before closing its socket (a clean close, not a drop).
    const signal = this.#signal;
    await signal.waitClosed();
    this.#takeClient(signal.frames.splice(0));
    this.#signal = undefined;
    this.#queue.detach();

    const restarted = await getJson(this.#client, `/sessions/${this.#sessionId}`, { method: "PUT" });
    if (restarted.status !== 200) throw new Error(`restart: ${restarted.status} ${JSON.stringify(restarted.body)}`);
    this.restarts++;
    // A new run: a new ServedSession on the runtime, with an empty outbox and its own numbering.
    this.#runtime.outboxes.delete(this.#sessionId);
    this.#runSeq = 0;
    this.#runProcessed = 0;
    this.#answered = 0;
    const { peer } = await this.#runtime.acceptAssignment();
    this.#runtimePeer = peer;
    await this.#connectClient();
  }

  /** The client seq the last emitted message will have: messages of a run follow the previous runs'. */
  #clientSeqOfLast(): number {
    return this.#emitted; // one client seq per message, across runs (the point of the per-run offset)
  }

  get model(): string {
    return this.#model;
  }
}
