/**
 * Scripted peers for tests inside workerd: a runtime (control socket + one socket per session) and a native
 * client, speaking the real protocol over real WebSockets to the real Worker and Durable Objects.
 */
import { exports } from "cloudflare:workers";
import type { Capabilities } from "../../src/protocol/common.ts";
import { BASE, mintToken, newApiKey } from "./helpers.ts";

export const RUNTIME_TOKEN = "rt_test_runtime_token_0123456789abcdef";

export const CAPABILITIES: Capabilities = {
  protocol_version: "1.0",
  tracks: [{ name: "main_video", kind: "video", direction: "recvonly" }],
  commands: [{ name: "set_prompt", description: "Steer the video." }],
  emission_fps: 30,
};

type Frame = { type: string; [key: string]: unknown };

/** A WebSocket whose incoming frames are queued, so a test can wait for the next frame of a kind. */
export class Peer {
  readonly frames: Frame[] = [];
  #waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | null = null;

  constructor(readonly ws: WebSocket) {
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
  async next<T extends Frame = Frame>(match: string | ((frame: Frame) => boolean), timeoutMs = 5000): Promise<T> {
    const test = typeof match === "string" ? (frame: Frame) => frame.type === match : match;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(test);
      if (index >= 0) return this.frames.splice(index, 1)[0] as T;
      if (this.closed && !this.frames.some(test)) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before ${String(match)}`);
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

async function open(path: string, headers: Record<string, string>): Promise<Peer> {
  const { response, peer } = await upgrade(path, headers);
  if (!peer) throw new Error(`upgrade refused: ${response.status} ${await response.text()}`);
  return peer;
}

/** A GPU runtime serving `model` with `slots` sessions at once. */
export class ScriptedRuntime {
  control!: Peer;
  readonly sessions = new Map<string, Peer>();

  constructor(
    readonly model: string,
    readonly id: string,
    readonly slots: number,
  ) {}

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
  async acceptAssignment(timeoutMs = 5000): Promise<{ sessionId: string; peer: Peer }> {
    const { session_id } = await this.control.next<{ type: "assign"; session_id: string }>("assign", timeoutMs);
    return { sessionId: session_id, peer: await this.openSession(session_id) };
  }

  async openSession(sessionId: string, commandSeq = 0): Promise<Peer> {
    const peer = await open(`/v1/runtime/sessions/${sessionId}?runtime_id=${encodeURIComponent(this.id)}`, {
      Authorization: `Bearer ${RUNTIME_TOKEN}`,
    });
    peer.send({ type: "hello", runtime_id: this.id, command_seq: commandSeq });
    await peer.next("session");
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

export async function createSession(client: ClientAccount, model: string): Promise<{ session_id: string; state: string; queue_position?: number }> {
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

/** A native client and a runtime taken all the way to ACTIVE. */
export async function activeNativeSession(model: string, runtime: ScriptedRuntime, client?: ClientAccount) {
  client ??= await newClient();
  const { session_id: sessionId } = await createSession(client, model);
  const { peer: runtimePeer } = await runtime.acceptAssignment();
  const signal = await openSignal(client, sessionId);
  signal.send({ type: "offer", generation: 1, sdp: OFFER });
  await runtimePeer.next("offer");
  runtimePeer.send({ type: "answer", generation: 1, sdp: ANSWER });
  await signal.next("answer");
  runtimePeer.send({ type: "peer_state", generation: 1, state: "connected" });
  await signal.next((frame) => frame.type === "status" && frame.state === "ACTIVE");
  return { client, sessionId, signal, runtimePeer };
}
