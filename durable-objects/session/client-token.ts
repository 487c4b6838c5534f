/**
 * The native client's token on its signaling socket: renewed by a `token` frame (verified as the socket's bearer
 * token was), and the socket closed (CLOSE_TOKEN_EXPIRED) once it expires unrenewed. The expiry lives in the
 * socket's attachment and as the record's `tokenExpiry` deadline, so hibernation loses neither.
 */
import type { ServerFrame } from "../../protocol/signaling.ts";
import { CLOSE_TOKEN_EXPIRED } from "../../protocol/signaling.ts";
import { verifyClientToken } from "../../src/auth/tokens.ts";
import { ApiError } from "../../src/errors.ts";
import { sendIfOpen } from "../sockets.ts";
import type { SessionHost } from "./host.ts";
import type { SocketAttachment } from "./record.ts";
import { sendError } from "./socket-links.ts";

/** What the token needs from its session object. */
export interface ClientTokenHost extends Pick<SessionHost, "env" | "record" | "now" | "events" | "scheduleAlarm"> {
  /** The socket is gone (a client drop). */
  onSocketGone(ws: WebSocket, how: string): Promise<void>;
}

export class ClientToken {
  readonly #host: ClientTokenHost;

  constructor(host: ClientTokenHost) {
    this.#host = host;
  }

  /**
   * A `token` frame: verified exactly as the socket's bearer token was (signature, claims, expiry), and for the
   * same access: this session's account, and its model if the token is narrowed to models. Then it is the
   * socket's token: its expiry replaces the old one. A refused token changes nothing (the old one still runs).
   */
  async renew(ws: WebSocket, token: string): Promise<void> {
    const session = this.#host.record()!;
    let principal: Awaited<ReturnType<typeof verifyClientToken>>;
    try {
      principal = await verifyClientToken(this.#host.env, token);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return sendError(ws, error.code, error.message, { type: "token" });
    }
    if (principal.accountId !== session.accountId || (principal.models && !principal.models.includes(session.model))) {
      return sendError(ws, "TOKEN_NOT_FOR_SESSION", undefined, { type: "token" });
    }
    const attachment = ws.deserializeAttachment() as SocketAttachment;
    const tokenDeadline = this.deadline(principal.expiresAt);
    ws.serializeAttachment({ ...attachment, tokenExpiresAt: principal.expiresAt, tokenDeadline } satisfies SocketAttachment);
    if (attachment.connection === session.clientSocket) session.deadlines.tokenExpiry = tokenDeadline;
    this.#host.scheduleAlarm();
    this.#host.events.record(this.#host.now(), "client_token_renewed", { expires_at: principal.expiresAt });
    sendIfOpen(ws, JSON.stringify({ type: "token_accepted", expires_at: principal.expiresAt } satisfies ServerFrame));
  }

  /** A token expiring at `expiresAt` (Unix seconds, verified just now), as a deadline on this object's clock. */
  deadline(expiresAt: number): number {
    return this.#host.now() + (expiresAt * 1000 - Date.now());
  }

  /** Closes `ws` (CLOSE_TOKEN_EXPIRED) if its token has expired; it then counts as a client drop. */
  async closeIfExpired(ws: WebSocket): Promise<boolean> {
    const { tokenDeadline } = ws.deserializeAttachment() as SocketAttachment;
    if (tokenDeadline === undefined || tokenDeadline > this.#host.now()) return false;
    if (ws.readyState === WebSocket.OPEN) ws.close(CLOSE_TOKEN_EXPIRED, "token expired");
    await this.#host.onSocketGone(ws, `closed ${CLOSE_TOKEN_EXPIRED} token expired`);
    return true;
  }
}
