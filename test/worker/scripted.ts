/**
 * Scripted peers for tests inside workerd: a runtime (control socket + one socket per session) and a native
 * client, speaking the real protocol over real WebSockets to the real Worker and Durable Objects.
 */
import { modelPool, sessionRelay } from "../../src/objects.ts";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import type { ModelPool, PoolSnapshot } from "../../durable-objects/pool/model-pool.ts";
import type { Capabilities } from "../../protocol/common.ts";
import { HEARTBEAT_REQUEST } from "../../protocol/runtime.ts";
import { BASE, call, mintToken, newApiKey } from "./helpers.ts";

export const RUNTIME_TOKEN = "rt_test_runtime_token_0123456789abcdef";

export const CAPABILITIES: Capabilities = {
  protocol_version: "1.0",
  tracks: [{ name: "main_video", kind: "video", direction: "recvonly" }],
  commands: [{ name: "set_prompt", description: "Steer the video." }],
  emission_fps: 30,
};

export type Frame = { type: string; [key: string]: unknown };
type Match = string | ((frame: Frame) => boolean);
const matcher = (match: Match) => (typeof match === "string" ? (frame: Frame) => frame.type === match : match);

let pings = 0;

/** A WebSocket whose incoming frames are queued, so a test can wait for the next frame of a kind. */
export class Peer {
  readonly frames: Frame[] = [];
  #waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | null = null;
  readonly ws: WebSocket;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.accept();
    ws.addEventListener("message", (event) => {
      this.frames.push(JSON.parse(event.data as string) as Frame);
      this.#notify();
    });
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
      this.#notify();
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Takes (removes) the first queued frame matching `match`, waiting for it up to `timeoutMs`. */
  async next<T extends Frame = Frame>(match: Match, timeoutMs = 5000): Promise<T> {
    const index = await this.#waitFor(match, timeoutMs);
    return this.frames.splice(index, 1)[0] as T;
  }

  /**
   * Takes every queued frame up to and including the first one matching `match`, in arrival order. A socket
   * delivers in order, so whatever the gateway sent before `match` is in the returned list: the way to assert
   * that something was sent once, or not at all, without waiting for time to pass.
   */
  async takeUntil(match: Match, timeoutMs = 5000): Promise<Frame[]> {
    const index = await this.#waitFor(match, timeoutMs);
    return this.frames.splice(0, index + 1);
  }

  /** Client sockets only: a ping/pong round trip. Returns (and removes) every frame that arrived before the pong. */
  async sync(timeoutMs = 5000): Promise<Frame[]> {
    const t = ++pings;
    this.send({ type: "ping", t });
    const frames = await this.takeUntil((frame) => frame.type === "pong" && frame.t === t, timeoutMs);
    return frames.slice(0, -1);
  }

  async #waitFor(match: Match, timeoutMs: number): Promise<number> {
    const test = matcher(match);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(test);
      if (index >= 0) return index;
      if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before ${String(match)}`);
      if (Date.now() > deadline) {
        throw new Error(`no ${String(match)} frame within ${timeoutMs} ms; queued: ${JSON.stringify(this.frames.map((f) => f.type))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Every queued frame of a type, removed from the queue. */
  drain(type: string): Frame[] {
    const matching = this.frames.filter((frame) => frame.type === type);
    for (const frame of matching) this.frames.splice(this.frames.indexOf(frame), 1);
    return matching;
  }

  async waitClosed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("socket did not close");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.closed;
  }

  close(code = 1000, reason = "bye"): void {
    this.ws.close(code, reason);
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

export async function upgrade(path: string, headers: Record<string, string>): Promise<{ response: Response; peer?: Peer }> {
  const response = await exports.default.fetch(new Request(BASE + path, { headers: { Upgrade: "websocket", ...headers } }));
  return { response, peer: response.webSocket ? new Peer(response.webSocket) : undefined };
}

async function open<P extends Peer = Peer>(path: string, headers: Record<string, string>, make?: (ws: WebSocket) => P): Promise<P> {
  const response = await exports.default.fetch(new Request(BASE + path, { headers: { Upgrade: "websocket", ...headers } }));
  if (!response.webSocket) throw new Error(`upgrade refused: ${response.status} ${await response.text()}`);
  return make ? make(response.webSocket) : (new Peer(response.webSocket) as P);
}

type MessageFrame = { type: "message"; seq: number; scope: string; data: unknown };
const isMessageFrame = (frame: unknown): frame is MessageFrame =>
  typeof frame === "object" && frame !== null && (frame as Frame).type === "message" && typeof (frame as Frame).seq === "number";

/**
 * A runtime's model messages for one session, as a real runtime agent keeps them: every message is kept until the
 * gateway acknowledges it (`message_ack`, cumulative), across reconnects of the session socket, and resent in
 * order when the gateway asks: after `session { message_seq }` everything newer, after `resend_messages
 * { from_seq }` everything from there.
 */
export class MessageOutbox {
  /** Kept messages by seq (the latest frame sent for a seq). */
  readonly kept = new Map<number, MessageFrame>();
  /** Highest seq the gateway acknowledged. */
  acknowledged = 0;
  /** How many messages were sent again on the gateway's request. */
  resent = 0;

  keep(frame: MessageFrame): void {
    if (frame.seq > this.acknowledged) this.kept.set(frame.seq, frame);
  }

  /** Kept messages from `from` on, oldest first. */
  from(from: number): MessageFrame[] {
    return [...this.kept.values()].filter((frame) => frame.seq >= from).sort((a, b) => a.seq - b.seq);
  }

  /** Looks at every frame from the gateway; answers the ones about messages on `send`. */
  onGatewayFrame(frame: Frame, send: (data: string) => void): void {
    if (frame.type === "message_ack") {
      this.acknowledged = Math.max(this.acknowledged, frame.seq as number);
      for (const seq of this.kept.keys()) if (seq <= this.acknowledged) this.kept.delete(seq);
    } else if (frame.type === "session" || frame.type === "resend_messages") {
      const from = frame.type === "session" ? (frame.message_seq as number) + 1 : (frame.from_seq as number);
      for (const message of this.from(from)) {
        this.resent++;
        send(JSON.stringify(message));
      }
    }
  }
}

/** A runtime's session socket: the model messages sent on it go through the session's outbox. */
export class RuntimeSessionPeer extends Peer {
  readonly outbox: MessageOutbox;
  /** The gateway's answer to this socket's hello. */
  session: Frame | undefined;

  constructor(ws: WebSocket, outbox: MessageOutbox) {
    super(ws);
    this.outbox = outbox;
    ws.addEventListener("message", (event) => outbox.onGatewayFrame(JSON.parse(event.data as string) as Frame, (data) => ws.send(data)));
  }

  override send(frame: unknown): void {
    if (isMessageFrame(frame)) this.outbox.keep(frame);
    super.send(frame);
  }
}

/**
 * A GPU runtime serving `model` with `slots` sessions at once. Like a real runtime agent it keeps each session's
 * model messages until the gateway acknowledges them, and resends them when asked (see MessageOutbox).
 */
export class ScriptedRuntime {
  control!: Peer;
  readonly sessions = new Map<string, RuntimeSessionPeer>();
  /** Per session, kept across reconnects of its socket (not across a new ScriptedRuntime: a restarted process). */
  readonly outboxes = new Map<string, MessageOutbox>();
  readonly model: string;
  readonly id: string;
  readonly slots: number;

  constructor(model: string, id: string, slots: number) {
    this.model = model;
    this.id = id;
    this.slots = slots;
  }

  async connect(sessions: string[] = []): Promise<this> {
    this.control = await open(`/v1/runtime/connect?model=${encodeURIComponent(this.model)}`, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
    this.control.send({
      type: "register",
      runtime_id: this.id,
      model: { name: this.model, version: "1.0.0" },
      capabilities: CAPABILITIES,
      slots: this.slots,
      sessions,
    });
    await this.control.next("registered");
    return this;
  }

  /** Waits for the pool to assign a session, then opens its session socket and says hello. */
  async acceptAssignment(timeoutMs = 5000): Promise<{ sessionId: string; peer: RuntimeSessionPeer }> {
    const { session_id } = await this.control.next<{ type: "assign"; session_id: string }>("assign", timeoutMs);
    return { sessionId: session_id, peer: await this.openSession(session_id) };
  }

  /** Sends a heartbeat on the control socket; the pool answers it without waking up. */
  async heartbeat(): Promise<void> {
    this.control.send(HEARTBEAT_REQUEST);
    await this.control.next("heartbeat_ack");
  }

  /** The session socket closes (network loss, or the runtime process died); the gateway sees the close. */
  async dropSession(sessionId: string): Promise<void> {
    const peer = this.sessions.get(sessionId);
    if (!peer) throw new Error(`no session socket for ${sessionId}`);
    peer.close(1001, "network lost");
    await peer.waitClosed();
    this.sessions.delete(sessionId);
  }

  /** The whole runtime goes away: its control socket and every session socket close. */
  async crash(): Promise<void> {
    for (const sessionId of [...this.sessions.keys()]) await this.dropSession(sessionId);
    this.control.close(1001, "crashed");
    await this.control.waitClosed();
  }

  outbox(sessionId: string): MessageOutbox {
    let outbox = this.outboxes.get(sessionId);
    if (!outbox) {
      outbox = new MessageOutbox();
      this.outboxes.set(sessionId, outbox);
    }
    return outbox;
  }

  /**
   * A model message for a session: sent if its socket is open, else only kept (sent after the next hello, like
   * everything the gateway has not acknowledged).
   */
  sendMessage(sessionId: string, frame: MessageFrame): void {
    const peer = this.sessions.get(sessionId);
    if (peer && !peer.closed) peer.send(frame);
    else this.outbox(sessionId).keep(frame);
  }

  async openSession(sessionId: string, commandSeq = 0): Promise<RuntimeSessionPeer> {
    const outbox = this.outbox(sessionId);
    const peer = await open(
      `/v1/runtime/sessions/${sessionId}?runtime_id=${encodeURIComponent(this.id)}`,
      { Authorization: `Bearer ${RUNTIME_TOKEN}` },
      (ws) => new RuntimeSessionPeer(ws, outbox),
    );
    peer.send({ type: "hello", runtime_id: this.id, command_seq: commandSeq });
    peer.session = await peer.next("session");
    this.sessions.set(sessionId, peer);
    return peer;
  }
}

export interface ClientAccount {
  jwt: string;
  account: string;
}

export async function newClient(account?: string): Promise<ClientAccount> {
  const key = await newApiKey(account);
  return { jwt: (await mintToken(key.key)).jwt, account: key.account_id };
}

export function clientHeaders(client: ClientAccount): Record<string, string> {
  return { Authorization: `Bearer ${client.jwt}`, "Content-Type": "application/json" };
}

/**
 * Makes `model` known to the gateway, as if a runtime had registered it once and left: its row in the D1 model
 * directory, not connected (so GET /v1/models does not list it). POST /sessions refuses names no runtime ever
 * registered (404 MODEL_NOT_FOUND). A row a connected runtime wrote is left as it is.
 */
export async function registerModel(model: string): Promise<void> {
  // Looked up first: a row already there is not written again (fault-injection tests make writes of a model fail).
  if (await env.DB.prepare("SELECT 1 FROM models WHERE name = ?").bind(model).first()) return;
  await env.DB.prepare("INSERT OR IGNORE INTO models (name, listed_at, connected) VALUES (?, ?, 0)").bind(model, Date.now()).run();
}

/**
 * POST /sessions as the official client sends it; throws unless 200. The model is registered first (see
 * registerModel): most tests create sessions on models whose runtime connects later, or never.
 */
export async function createSession(client: ClientAccount, model: string): Promise<{ session_id: string; state: string; queue_position?: number }> {
  await registerModel(model);
  const response = await exports.default.fetch(
    new Request(`${BASE}/sessions`, {
      method: "POST",
      headers: clientHeaders(client),
      body: JSON.stringify({ model: { name: model }, client_info: { sdk_version: "test", sdk_type: "js" } }),
    }),
  );
  if (response.status !== 200) throw new Error(`create failed: ${response.status} ${await response.text()}`);
  return response.json();
}

export function openSignal(client: ClientAccount, sessionId: string): Promise<Peer> {
  return open(`/v1/sessions/${sessionId}/signal`, { "Sec-WebSocket-Protocol": `reactor.v1, bearer.${client.jwt}` });
}

export const OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
export const ANSWER = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";

/** Offer, answer and a connected peer over a native client's socket and its runtime's session socket: ACTIVE. */
export async function negotiate(signal: Peer, runtimePeer: Peer, generation = 1): Promise<void> {
  signal.send({ type: "offer", generation, sdp: OFFER });
  await runtimePeer.next((frame) => frame.type === "offer" && frame.generation === generation);
  runtimePeer.send({ type: "answer", generation, sdp: ANSWER });
  await signal.next((frame) => frame.type === "answer" && frame.generation === generation);
  runtimePeer.send({ type: "peer_state", generation, state: "connected" });
  await signal.next((frame) => frame.type === "status" && frame.state === "ACTIVE");
}

/** A native client and a runtime taken all the way to ACTIVE. */
export async function activeNativeSession(model: string, runtime: ScriptedRuntime, client?: ClientAccount) {
  client ??= await newClient();
  const { session_id: sessionId } = await createSession(client, model);
  const { peer: runtimePeer } = await runtime.acceptAssignment();
  const signal = await openSignal(client, sessionId);
  await negotiate(signal, runtimePeer);
  return { client, sessionId, signal, runtimePeer };
}

/** A command frame; `data` carries the seq so the runtime side can tell copies apart. */
export function command(seq: number, options: { type?: string; policy?: "buffer" | "replace" | "drop"; data?: unknown } = {}) {
  const { type = "set_prompt", policy, data = { prompt: `prompt ${seq}` } } = options;
  return { type: "command", seq, command: { type, data }, ...(policy && { policy }) };
}

/** The seqs of the `command` frames among `frames`, in arrival order. */
export const commandSeqs = (frames: Frame[]) => frames.filter((frame) => frame.type === "command").map((frame) => frame.seq as number);

/** A `command_status` frame for `seq` in `state`. */
export const commandStatus = (seq: number, state: string) => (frame: Frame) =>
  frame.type === "command_status" && frame.seq === seq && frame.state === state;

export const isStatus = (state: string) => (frame: Frame) => frame.type === "status" && frame.state === state;

// ── Objects, clocks and REST ──────────────────────────────────────────────────────────────────────────────────

let models = 0;
/** A model name no other test uses, so every test gets its own pool. */
export const freshModel = (prefix = "model") => `${prefix}-${++models}-${crypto.randomUUID().slice(0, 8)}`;

export const sessionStub = (sessionId: string) => sessionRelay(env, sessionId);
export const poolStub = (model: string) => modelPool(env, model);

/** The pool's runtimes, free slots and queue length, read inside the pool object. */
export const poolSnapshot = (model: string): Promise<PoolSnapshot> => runInDurableObject(poolStub(model), (pool: ModelPool) => pool.snapshot());

/**
 * Moves an object's test clock forward (TEST_CLOCK=1; the offset is stored), then evicts the object so it wakes
 * up reading the new offset. Works for sessions and pools alike.
 */
export async function advanceClock(stub: DurableObjectStub, ms: number): Promise<void> {
  await runInDurableObject(stub, (_instance: unknown, state: DurableObjectState) => {
    state.storage.kv.put("clock_offset_ms", (state.storage.kv.get<number>("clock_offset_ms") ?? 0) + ms);
  });
  await evictDurableObject(stub);
}

export async function getJson(client: ClientAccount, path: string, init: RequestInit = {}) {
  const response = await call(path, { ...init, headers: { ...clientHeaders(client), ...(init.headers ?? {}) } });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

/** The session's state as GET /sessions/{id}/info reports it (answered at once, never long-polled). */
export async function stateOf(client: ClientAccount, sessionId: string): Promise<unknown> {
  return (await getJson(client, `/sessions/${sessionId}/info`)).body.state;
}
