/**
 * One native signaling socket (`/v1/sessions/{id}/signal`): authenticates with the subprotocols `reactor.v1` and
 * `bearer.<jwt>`, validates every server frame against the shared protocol (a bad one is reported and ignored), and
 * sends keep-alive pings so a dead connection is noticed even when nothing else is said.
 */
import { decodeFrame } from "../../protocol/frames.ts";
import { KEEPALIVE_PING, ServerFrame, type ClientFrame } from "../../protocol/signaling.ts";
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
  /**
   * A fresh token, asked for ahead of the current one's expiry (at 80 % of its lifetime, or 60 s before it,
   * whichever is sooner) and sent as a `token` frame: the gateway closes a socket whose token expired (4001).
   * Without it the socket lives as long as the token it opened with.
   */
  renewToken?: () => Promise<string>;
}

const OPEN = 1;
/** Reported when the keep-alive finds the connection silent (not a code the gateway sends). */
export const KEEPALIVE_TIMEOUT_CODE = 4408;
/** A renewal that failed is tried again this much later, while the current token still runs. */
const RENEW_RETRY_MS = 5000;

/** `exp` and `iat` of a JWT (Unix seconds), read without verifying: only to time the renewal. */
export function tokenTimes(jwt: string): { exp: number; iat: number } | undefined {
  try {
    const payload = jwt.split(".")[1] ?? "";
    const json = atob(
      payload
        .replace(/-/g, "+")
        .replace(/_/g, "/")
        .padEnd(Math.ceil(payload.length / 4) * 4, "="),
    );
    const { exp, iat } = JSON.parse(json) as { exp?: unknown; iat?: unknown };
    if (typeof exp !== "number") return undefined;
    return { exp, iat: typeof iat === "number" ? iat : Math.floor(Date.now() / 1000) };
  } catch {
    return undefined;
  }
}

/**
 * When to renew a token living from `iat` to `exp` (Unix seconds): 80 % into its life, or 60 s before its end if
 * that is sooner — but never before half of it, so short tokens are not renewed the moment they arrive.
 */
export function renewAtMs(times: { exp: number; iat: number }): number {
  const startMs = times.iat * 1000;
  const lifetimeMs = (times.exp - times.iat) * 1000;
  return Math.max(startMs + 0.5 * lifetimeMs, Math.min(startMs + 0.8 * lifetimeMs, times.exp * 1000 - 60_000));
}

export class SignalingSocket {
  readonly #ws: WebSocketLike;
  readonly #handlers: SocketHandlers;
  #welcomed = false;
  #done = false;
  #lastHeard = Date.now();
  #keepAlive: ReturnType<typeof setInterval> | undefined;
  #probe: ReturnType<typeof setTimeout> | undefined;
  readonly #renewToken: (() => Promise<string>) | undefined;
  #renewTimer: ReturnType<typeof setTimeout> | undefined;
  /** The token this socket runs on (the one it opened with, or the last renewal the gateway accepted). */
  #token: string;
  /** A renewal sent and not answered yet. */
  #renewing: string | undefined;

  constructor(options: SocketOptions) {
    this.#handlers = options.handlers;
    this.#renewToken = options.renewToken;
    this.#token = options.token;
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
      const message = `A server frame was ignored: ${decoded.error.message}`;
      this.#handlers.invalid(new ReactorError({ code: decoded.error.code, message, recoverable: false, component: "api" }));
      return;
    }
    const frame = decoded.value;
    if (frame.type === "welcome") {
      this.#welcomed = true;
      this.#scheduleRenewal();
    }
    if (frame.type === "token_accepted") {
      const before = tokenTimes(this.#token)?.exp ?? 0;
      if (this.#renewing !== undefined) this.#token = this.#renewing;
      this.#renewing = undefined;
      // A token function that returns the same token again must not make this a busy loop.
      this.#scheduleRenewal((tokenTimes(this.#token)?.exp ?? 0) > before ? undefined : RENEW_RETRY_MS);
      return;
    }
    if (frame.type === "error" && (frame.ref as { type?: unknown } | undefined)?.type === "token") {
      // Refused: the socket keeps its current token; try another one a little later, while that one runs.
      this.#renewing = undefined;
      this.#scheduleRenewal(RENEW_RETRY_MS);
    }
    this.#handlers.frame(frame);
  }

  #onClose(code: number, reason: string): void {
    if (this.#done) return;
    this.#finish();
    this.#handlers.closed({ code, reason, welcomed: this.#welcomed });
  }

  /** Renews the token ahead of its expiry (`retryInMs`: sooner, after a failure), if there is a way to. */
  #scheduleRenewal(retryInMs?: number): void {
    clearTimeout(this.#renewTimer);
    const times = tokenTimes(this.#token);
    if (!this.#renewToken || !times || this.#done) return;
    const now = Date.now();
    if (times.exp * 1000 <= now) return; // too late: the gateway closes the socket, and recovery opens a new one
    const delay = retryInMs ?? Math.max(0, renewAtMs(times) - now);
    this.#renewTimer = setTimeout(() => void this.#renew(), Math.min(delay, times.exp * 1000 - now));
  }

  async #renew(): Promise<void> {
    let token: string;
    try {
      token = await this.#renewToken!();
    } catch {
      return this.#scheduleRenewal(RENEW_RETRY_MS);
    }
    if (this.#done) return;
    this.#renewing = token;
    if (!this.send({ type: "token", token })) this.#renewing = undefined;
  }

  /**
   * After a network change: asks the gateway for a sign of life now, and takes the connection for dead if none comes
   * within `withinMs`. A TCP connection whose local address went away (Wi-Fi → cellular) stays "open" to the browser
   * until the keep-alive notices, ~2.5 periods later; everything sent meanwhile is lost.
   */
  probe(withinMs: number): void {
    if (!this.open || this.#probe !== undefined) return;
    const sentAt = Date.now();
    this.#ws.send(KEEPALIVE_PING);
    this.#probe = setTimeout(() => {
      this.#probe = undefined;
      if (this.#done || this.#lastHeard >= sentAt) return;
      const reason = "no answer after a network change";
      this.close(KEEPALIVE_TIMEOUT_CODE, reason);
      this.#handlers.closed({ code: KEEPALIVE_TIMEOUT_CODE, reason, welcomed: this.#welcomed });
    }, withinMs);
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
    clearTimeout(this.#probe);
    clearTimeout(this.#renewTimer);
  }
}
