/**
 * One native signaling socket (`/v1/sessions/{id}/signal`): authenticates with the subprotocols `reactor.v1` and
 * `bearer.<jwt>`, validates every server frame against the shared protocol (a bad one is reported and ignored), and
 * sends keep-alive pings so a dead connection is noticed even when nothing else is said.
 */
import { decodeFrame } from "../../src/protocol/frames.ts";
import { KEEPALIVE_PING, ServerFrame, type ClientFrame } from "../../src/protocol/signaling.ts";
import { ReactorError } from "./errors.ts";

export type WebSocketLike = Pick<WebSocket, "readyState" | "send" | "close" | "addEventListener" | "protocol">;
export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

export interface SocketHandlers {
  frame(frame: ServerFrame): void;
  /** A server frame that failed validation; it has been ignored. */
  invalid(error: ReactorError): void;
  /** The socket closed without this side asking (the network, the gateway, or a keep-alive timeout). */
  closed(info: { code: number; reason: string; welcomed: boolean }): void;
}

export interface SocketOptions {
  url: string;
  token: string;
  WebSocket: WebSocketConstructor;
  /** Ping period; the socket counts as dead after 2.5 periods without any frame. 0 disables. */
  keepAliveMs: number;
  handlers: SocketHandlers;
}

const OPEN = 1;
/** Reported when the keep-alive finds the connection silent (not a code the gateway sends). */
export const KEEPALIVE_TIMEOUT_CODE = 4408;

export class SignalingSocket {
  readonly #ws: WebSocketLike;
  readonly #handlers: SocketHandlers;
  #welcomed = false;
  #done = false;
  #lastHeard = Date.now();
  #keepAlive: ReturnType<typeof setInterval> | undefined;

  constructor(options: SocketOptions) {
    this.#handlers = options.handlers;
    this.#ws = new options.WebSocket(options.url, ["reactor.v1", `bearer.${options.token}`]);
    this.#ws.addEventListener("message", (event) => this.#onMessage((event as MessageEvent).data));
    this.#ws.addEventListener("close", (event) => this.#onClose((event as CloseEvent).code, (event as CloseEvent).reason));
    if (options.keepAliveMs > 0) this.#startKeepAlive(options.keepAliveMs);
  }

  get open(): boolean {
    return !this.#done && this.#ws.readyState === OPEN;
  }

  get welcomed(): boolean {
    return this.#welcomed;
  }

  /** Sends if open; returns whether it was sent (a frame sent on a socket that then dies may still be lost). */
  send(frame: ClientFrame): boolean {
    if (!this.open) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  /** Closes from this side; no `closed` callback follows. */
  close(code = 1000, reason = "client closed"): void {
    if (this.#done) return;
    this.#finish();
    try {
      this.#ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  #onMessage(data: unknown): void {
    if (this.#done) return;
    this.#lastHeard = Date.now();
    const decoded = decodeFrame(ServerFrame, typeof data === "string" ? data : new ArrayBuffer(0));
    if (!decoded.ok) {
      const message = `A server frame was ignored: ${decoded.message}`;
      this.#handlers.invalid(new ReactorError({ code: decoded.code, message, recoverable: false, component: "api" }));
      return;
    }
    if (decoded.frame.type === "welcome") this.#welcomed = true;
    this.#handlers.frame(decoded.frame);
  }

  #onClose(code: number, reason: string): void {
    if (this.#done) return;
    this.#finish();
    this.#handlers.closed({ code, reason, welcomed: this.#welcomed });
  }

  #startKeepAlive(periodMs: number): void {
    this.#keepAlive = setInterval(() => {
      if (Date.now() - this.#lastHeard > periodMs * 2.5) {
        this.close(KEEPALIVE_TIMEOUT_CODE, "keep-alive timeout");
        this.#handlers.closed({ code: KEEPALIVE_TIMEOUT_CODE, reason: "keep-alive timeout", welcomed: this.#welcomed });
      } else if (this.open) {
        this.#ws.send(KEEPALIVE_PING);
      }
    }, periodMs);
  }

  #finish(): void {
    this.#done = true;
    clearInterval(this.#keepAlive);
  }
}
