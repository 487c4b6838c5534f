/**
 * Scripted peers for benchmarks and load tests from Node: a GPU runtime (control socket + one socket per session)
 * and a native client, speaking the gateway's real protocol over real WebSockets. No media.
 */
import WebSocket from "ws";
import type { Capabilities } from "../protocol/common.ts";
import { HEARTBEAT_REQUEST } from "../protocol/runtime.ts";
import { MessageOutbox } from "../runtime/outbox.ts";

/** A runtime's model messages for one session, kept until acknowledged: the runtime agent's own outbox. */
export { MessageOutbox };

export type Frame = { type: string; [key: string]: unknown };

export const BENCH_CAPABILITIES: Capabilities = {
  protocol_version: "1.0",
  tracks: [{ name: "main_video", kind: "video", direction: "recvonly" }],
  commands: [{ name: "echo", description: "Answers with the same data." }],
  emission_fps: 30,
};

export const FAKE_SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";

/** A WebSocket with a queue of parsed frames and an optional handler that sees every frame first. */
export class NodePeer {
  readonly frames: Frame[] = [];
  onFrame: ((frame: Frame) => boolean | undefined) | undefined;
  /** A runtime session socket's messages: kept until acknowledged, resent on request (see MessageOutbox). */
  outbox: MessageOutbox | undefined;
  readonly ws: WebSocket;
  #waiters: (() => void)[] = [];
  #closed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      this.outbox?.onGatewayFrame(frame, (message) => this.ws.send(message));
      if (this.onFrame?.(frame) === true) return; // consumed
      this.frames.push(frame);
      this.#wake();
    });
    ws.on("close", () => {
      this.#closed = true;
      this.#wake();
    });
  }

  static open(url: string, options: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<NodePeer> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options.protocols ?? [], { headers: options.headers, perMessageDeflate: false });
      ws.once("open", () => resolve(new NodePeer(ws)));
      ws.once("unexpected-response", (_request, response) => reject(new Error(`${url}: HTTP ${response.statusCode}`)));
      ws.once("error", reject);
    });
  }

  send(frame: unknown): void {
    const data = typeof frame === "string" ? frame : JSON.stringify(frame);
    const message = frame as Frame;
    if (this.outbox && typeof frame === "object" && frame !== null && message.type === "message") this.outbox.keep(message.seq as number, data);
    this.ws.send(data);
  }

  async next(match: string | ((frame: Frame) => boolean), timeoutMs = 10_000): Promise<Frame> {
    const test = typeof match === "string" ? (frame: Frame) => frame.type === match : match;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(test);
      if (index >= 0) return this.frames.splice(index, 1)[0]!;
      if (this.#closed) throw new Error(`socket closed while waiting for ${String(match)}`);
      if (Date.now() > deadline) throw new Error(`no ${String(match)} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.ws.close();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

export interface GatewayAccess {
  /** http://127.0.0.1:PORT */
  url: string;
  runtimeToken: string;
}

const wsUrl = (httpUrl: string) => httpUrl.replace(/^http/, "ws");

/**
 * A scripted GPU runtime: its control socket (register, heartbeats, assignments) and one socket per session. The
 * same runtime serves one session in a test and hundreds in a load run (bench/lib/fleet.ts's RuntimePool).
 */
export class BenchRuntime {
  readonly gateway: GatewayAccess;
  readonly model: string;
  readonly id: string;
  readonly slots: number;
  control!: NodePeer;
  /** Each session's model messages, kept across reconnects of its socket (the runtime agent's own outbox). */
  readonly outboxes = new Map<string, MessageOutbox>();
  /** Error frames the pool sent on the control socket (the first 20). */
  readonly errors: string[] = [];
  /** How the control socket closed, once it has (the pool closes a silent runtime's with 4008). */
  closedWith: string | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(gateway: GatewayAccess, model: string, id: string, slots: number) {
    this.gateway = gateway;
    this.model = model;
    this.id = id;
    this.slots = slots;
  }

  /**
   * Registers, then sends heartbeats: the pool closes a control socket that misses 3 (4008). With `onAssign`, every
   * control frame is consumed and each `assign` goes to it (a load run reads nothing else there); without, frames
   * other than `registered` stay queued for `control.next("assign")`.
   */
  async connect(onAssign?: (sessionId: string, runtime: BenchRuntime) => void): Promise<this> {
    this.control = await NodePeer.open(`${wsUrl(this.gateway.url)}/v1/runtime/connect?model=${encodeURIComponent(this.model)}`, {
      headers: { Authorization: `Bearer ${this.gateway.runtimeToken}` },
    });
    const registered = new Promise<number>((resolve, reject) => {
      this.control.onFrame = (frame) => {
        if (frame.type === "registered") {
          resolve(Number(frame.heartbeat_interval_ms));
          return true;
        }
        if (frame.type === "assign") onAssign?.(frame.session_id as string, this);
        else if (frame.type === "error") {
          const error = `runtime ${this.id}: ${String(frame.code)} ${String(frame.message)}`;
          if (this.errors.length < 20) this.errors.push(error);
          reject(new Error(error));
        }
        return onAssign !== undefined;
      };
      this.control.ws.once("close", (code, reason) => {
        this.closedWith = `${code}${reason.length > 0 ? ` ${reason.toString()}` : ""}`;
        reject(new Error(`runtime ${this.id}: control socket closed ${this.closedWith}`));
      });
    });
    this.control.send({
      type: "register",
      runtime_id: this.id,
      model: { name: this.model, version: "bench" },
      capabilities: BENCH_CAPABILITIES,
      slots: this.slots,
    });
    const interval = await withTimeout(registered, 30_000, `runtime ${this.id}: no registered`);
    this.#heartbeat = setInterval(() => this.control.send(HEARTBEAT_REQUEST), Math.max(500, interval * 0.6 || 3000));
    this.#heartbeat.unref();
    this.control.ws.once("close", () => clearInterval(this.#heartbeat));
    return this;
  }

  /**
   * Opens the session socket of an assigned session and says hello (`commandSeq`: highest command processed).
   * `onFrame`, if given, sees every frame from the start (resent commands follow the `session` frame at once); it
   * must leave the `session` frame to the queue (return false for it).
   */
  async openSession(sessionId: string, commandSeq = 0, onFrame?: (frame: Frame) => boolean): Promise<NodePeer> {
    const peer = await NodePeer.open(`${wsUrl(this.gateway.url)}/v1/runtime/sessions/${sessionId}?runtime_id=${encodeURIComponent(this.id)}`, {
      headers: { Authorization: `Bearer ${this.gateway.runtimeToken}` },
    });
    let outbox = this.outboxes.get(sessionId);
    if (!outbox) {
      outbox = new MessageOutbox();
      this.outboxes.set(sessionId, outbox);
    }
    peer.outbox = outbox; // before the hello: its answer may ask for resends
    if (onFrame) attach(peer, onFrame);
    peer.send({ type: "hello", runtime_id: this.id, command_seq: commandSeq });
    await peer.next("session", 60_000);
    return peer;
  }

  close(): void {
    clearInterval(this.#heartbeat);
    this.control?.ws.terminate();
  }
}

/**
 * Sets a socket's frame handler and runs the frames that arrived before it through it: the first frame can come
 * in the same packet as the upgrade's answer, before the caller had a chance to set a handler.
 */
export function attach(peer: NodePeer, onFrame: (frame: Frame) => boolean | undefined): void {
  peer.onFrame = onFrame;
  const queued = peer.frames.splice(0);
  for (const frame of queued) if (onFrame(frame) !== true) peer.frames.push(frame);
}

/** `promise`, or a rejection saying what did not happen within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Makes `model` known to the gateway, which refuses sessions on names no runtime ever registered (404
 * MODEL_NOT_FOUND): a runtime registers it and leaves. Sessions created on it then wait, no runtime connected.
 */
export async function registerModel(gateway: GatewayAccess, model: string): Promise<void> {
  const runtime = await new BenchRuntime(gateway, model, `register-${model}`, 1).connect();
  const closed = new Promise((resolve) => runtime.control.ws.once("close", resolve));
  runtime.control.ws.close();
  await closed;
}

export async function createSession(gatewayUrl: string, jwt: string, model: string): Promise<string> {
  const response = await fetch(`${gatewayUrl}/sessions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ model: { name: model } }),
  });
  if (!response.ok) throw new Error(`POST /sessions: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { session_id: string }).session_id;
}

export function openSignal(gatewayUrl: string, jwt: string, sessionId: string): Promise<NodePeer> {
  return NodePeer.open(`${wsUrl(gatewayUrl)}/v1/sessions/${sessionId}/signal`, { protocols: ["reactor.v1", `bearer.${jwt}`] });
}

/** Creates a session and takes it to ACTIVE: assignment, runtime socket, offer/answer, peer connected. */
export async function activeSession(gatewayUrl: string, jwt: string, runtime: BenchRuntime) {
  const assigned = runtime.control.next("assign", 30_000);
  assigned.catch(() => {}); // awaited below; if creating fails first, its rejection must not go unhandled
  const sessionId = await createSession(gatewayUrl, jwt, runtime.model);
  const assignment = await assigned;
  if (assignment.session_id !== sessionId) throw new Error("assignments arrived out of order; create sessions one at a time");
  const runtimePeer = await runtime.openSession(sessionId);
  const client = await openSignal(gatewayUrl, jwt, sessionId);
  client.send({ type: "offer", generation: 1, sdp: FAKE_SDP });
  await runtimePeer.next("offer");
  runtimePeer.send({ type: "answer", generation: 1, sdp: FAKE_SDP });
  runtimePeer.send({ type: "peer_state", generation: 1, state: "connected" });
  await client.next((frame) => frame.type === "status" && frame.state === "ACTIVE", 30_000);
  return { sessionId, client, runtimePeer };
}
