/**
 * One of the runtime's outbound sockets to the gateway (the control socket, or a session socket), kept open: it
 * reconnects with jittered backoff after any loss, validates every frame the gateway sends against the protocol
 * schema (a bad frame is logged and skipped, never fatal), and detects a dead connection with WebSocket pings.
 *
 * Its life is an explicit state machine (TRANSITIONS below); the owner decides, per failure, whether a retry makes
 * sense (an upgrade refused with 409 "session ended" does not).
 */
import WebSocket from "ws";
import { decodeFrame } from "../protocol/frames.ts";
import type { Schema } from "../protocol/schema.ts";
import { Backoff, type BackoffOptions } from "../lib/backoff.ts";
import { errorText, type Log } from "./log.ts";

type State = "idle" | "connecting" | "open" | "waiting" | "stopped";
type Event = "start" | "opened" | "lost" | "retry" | "stop";

const TRANSITIONS: Record<State, Partial<Record<Event, State>>> = {
  idle: { start: "connecting", stop: "stopped" },
  connecting: { opened: "open", lost: "waiting", stop: "stopped" },
  open: { lost: "waiting", stop: "stopped" },
  waiting: { retry: "connecting", stop: "stopped" },
  stopped: {},
};

/** Why a connection ended or never opened. */
export type SocketFailure =
  | { kind: "refused"; status: number; body: string }
  | { kind: "closed"; code: number; reason: string }
  | { kind: "error"; message: string };

export interface ManagedSocketOptions<In> {
  url: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Every frame from the gateway is decoded against this schema first. */
  schema: Schema<In>;
  log: Log;
  backoff?: BackoffOptions;
  /** Frames answered by the gateway without a schema (heartbeat acks): passed to onRaw instead of decoded. */
  rawFrames?: readonly string[];
  /** WebSocket ping period; the socket counts as dead after 3 unanswered pings (default 5 s). */
  pingIntervalMs?: number;
  /** Each time the socket opens: say hello / register. */
  onOpen(): void;
  onFrame(frame: In): void;
  onRaw?(raw: string): void;
  /**
   * A frame from the gateway that could not be taken (too large, not JSON, not the protocol) and was skipped:
   * `frameType` is its `type` when that can be read. The owner reports it where the protocol allows.
   */
  onBadFrame?(code: string, message: string, frameType: string | undefined): void;
  /** The connection is gone. Return false to stop for good (no retry); the default retries. */
  onLost?(failure: SocketFailure): boolean | undefined;
}

export class ManagedSocket<In, Out> {
  readonly #options: ManagedSocketOptions<In>;
  readonly #backoff: Backoff;
  #state: State = "idle";
  #ws: WebSocket | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #unansweredPings = 0;

  constructor(options: ManagedSocketOptions<In>) {
    this.#options = options;
    this.#backoff = new Backoff(options.backoff);
  }

  get state(): State {
    return this.#state;
  }

  get isOpen(): boolean {
    return this.#state === "open";
  }

  start(): void {
    if (this.#move("start")) this.#connect();
  }

  /** Sends a frame if the socket is open; returns whether it was sent. */
  send(frame: Out | string): boolean {
    if (this.#state !== "open" || this.#ws?.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return true;
  }

  /** Closes for good; no retry. */
  stop(code = 1000, reason = "runtime stopping"): void {
    if (!this.#move("stop")) return;
    clearTimeout(this.#retryTimer);
    this.#stopPings();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws?.readyState === WebSocket.OPEN) ws.close(code, reason);
    else ws?.terminate();
  }

  /** Drops the connection abruptly, as a network loss would; it reconnects as after any loss (tests, demos). */
  drop(): void {
    this.#ws?.terminate();
  }

  #move(event: Event): boolean {
    const next = TRANSITIONS[this.#state][event];
    if (next === undefined) return false;
    this.#state = next;
    return true;
  }

  #connect(): void {
    const ws = new WebSocket(this.#options.url, { headers: { Authorization: `Bearer ${this.#options.token}` }, perMessageDeflate: false });
    this.#ws = ws;
    let failed = false;
    const fail = (failure: SocketFailure) => {
      if (failed || this.#ws !== ws) return; // one report per connection; a replaced socket reports nothing
      failed = true;
      ws.removeAllListeners();
      ws.on("error", () => undefined);
      ws.terminate();
      this.#lost(failure);
    };
    ws.on("unexpected-response", (_request, response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body = (body + chunk).slice(0, 2048)));
      response.on("end", () => fail({ kind: "refused", status: response.statusCode ?? 0, body }));
      response.on("error", () => fail({ kind: "refused", status: response.statusCode ?? 0, body }));
    });
    ws.on("error", (error) => fail({ kind: "error", message: errorText(error) }));
    ws.on("close", (code, reason) => fail({ kind: "closed", code, reason: reason.toString() }));
    ws.on("pong", () => (this.#unansweredPings = 0));
    ws.on("message", (data, isBinary) => this.#receive(isBinary ? new ArrayBuffer(0) : data.toString()));
    ws.on("open", () => {
      if (!this.#move("opened")) return;
      this.#backoff.reset();
      this.#startPings(ws);
      this.#options.onOpen();
    });
  }

  #receive(raw: string | ArrayBuffer): void {
    if (typeof raw === "string" && this.#options.rawFrames?.includes(raw)) {
      this.#options.onRaw?.(raw);
      return;
    }
    const decoded = decodeFrame(this.#options.schema, raw);
    if (!decoded.ok) {
      const text = typeof raw === "string" ? raw.slice(0, 200) : "(binary)";
      this.#options.log("warn", `bad frame from the gateway skipped (${decoded.error.code}: ${decoded.error.message}): ${text}`);
      this.#options.onBadFrame?.(decoded.error.code, decoded.error.message, typeof raw === "string" ? frameTypeOf(raw) : undefined);
      return;
    }
    try {
      this.#options.onFrame(decoded.value);
    } catch (error) {
      this.#options.log("error", `handling a ${(decoded.value as { type?: string }).type} frame failed: ${errorText(error)}`);
    }
  }

  #lost(failure: SocketFailure): void {
    this.#stopPings();
    this.#ws = undefined;
    if (!this.#move("lost")) return;
    if (this.#options.onLost?.(failure) === false) {
      this.stop();
      return;
    }
    const delay = this.#backoff.next();
    this.#options.log("info", `connection lost (${describeFailure(failure)}); retrying in ${delay} ms`);
    this.#retryTimer = setTimeout(() => {
      if (this.#move("retry")) this.#connect();
    }, delay);
  }

  #startPings(ws: WebSocket): void {
    const intervalMs = this.#options.pingIntervalMs ?? 5000;
    this.#unansweredPings = 0;
    this.#pingTimer = setInterval(() => {
      if (this.#unansweredPings >= 3) {
        this.#options.log("warn", "no answer to 3 pings: the connection is dead");
        ws.terminate();
        return;
      }
      this.#unansweredPings++;
      ws.ping();
    }, intervalMs);
    this.#pingTimer.unref();
  }

  #stopPings(): void {
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }
}

export function describeFailure(failure: SocketFailure): string {
  switch (failure.kind) {
    case "refused":
      return `upgrade refused with HTTP ${failure.status}${failure.body ? `: ${failure.body.slice(0, 200)}` : ""}`;
    case "closed":
      return `closed ${failure.code}${failure.reason ? ` ${failure.reason}` : ""}`;
    case "error":
      return failure.message;
  }
}

/** The `type` of a frame that did not decode, if it opens with one (the gateway writes `type` first). */
function frameTypeOf(raw: string): string | undefined {
  return /^\{\s*"type"\s*:\s*"([A-Za-z_]{1,64})"/.exec(raw)?.[1];
}

/** ws://… or wss://… for an http(s) gateway URL. */
export function socketUrl(gatewayUrl: string, path: string): string {
  const url = new URL(path, gatewayUrl.endsWith("/") ? gatewayUrl : `${gatewayUrl}/`);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}
