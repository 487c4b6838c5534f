/**
 * The native signaling socket between our SDK and a session (`GET /v1/sessions/{id}/signal`, WebSocket).
 * Every frame is JSON with a `type`; client frames are validated on arrival, server frames are typed here so the
 * SDK and the gateway share one definition.
 */
import {
  Capabilities,
  Command,
  COMMAND_POLICIES,
  COMMAND_STATES,
  Generation,
  IceCandidate,
  IceServer,
  MessageScope,
  Sdp,
  Sequence,
  SessionState,
} from "./common.ts";
import { array, boolean, integer, json, nullable, number, object, oneOf, optional, string, union, type Infer } from "./schema.ts";

/** A ping with nothing else in it is answered by the edge without waking the session (keep-alive). */
export const KEEPALIVE_PING = '{"type":"ping"}';
export const KEEPALIVE_PONG = '{"type":"pong"}';

/** Close code of a signaling socket whose token expired without a renewal (`token` frame). */
export const CLOSE_TOKEN_EXPIRED = 4001;

export const ClientFrame = union("type", {
  /** A new peer connection generation (first connect, ICE restart, reconnect). Older generations are dropped. */
  offer: object({ generation: Generation, sdp: Sdp }),
  /** Trickled ICE; `candidate: null` ends this side's gathering for the generation. */
  ice: object({ generation: Generation, candidate: nullable(IceCandidate) }),
  /** A command for the model, numbered by the client from 1 without gaps. */
  command: object({ seq: Sequence, command: Command, policy: optional(oneOf(COMMAND_POLICIES)) }),
  /** Cumulative acknowledgement of model messages received. */
  ack: object({ message_seq: integer({ min: 0 }) }),
  /**
   * Cumulative: the client has seen the final state (acknowledged, dropped, replaced) of every command up to `seq`.
   * Until then the gateway keeps what it needs to tell a reconnecting client those states again.
   */
  commands_seen: object({ seq: Sequence }),
  /**
   * A fresh token for this socket, before the one it opened with expires (verified like the bearer token: same
   * account, access to this session). Answered `token_accepted`, or `error` with the token's code (the socket keeps
   * its current token). A socket whose token expires without renewal is closed with CLOSE_TOKEN_EXPIRED.
   */
  token: object({ token: string({ min: 1, max: 8192 }) }),
  ping: object({ t: optional(number()) }),
  /** End the session for good. */
  close: object({ reason: optional(string({ max: 256 })) }),
});
export type ClientFrame = Infer<typeof ClientFrame>;

export const ServerFrame = union("type", {
  /** First frame on every (re)connection. `next_command_seq` is the next seq the gateway expects. */
  welcome: object({
    protocol: integer(),
    session_id: string(),
    next_command_seq: Sequence,
    message_seq: integer({
      min: 0,
      description: "Seq of the last model message the gateway has for this client; unacknowledged ones follow.",
    }),
  }),
  status: object({
    state: SessionState,
    reason: optional(string()),
    queue_position: optional(integer({ min: 0 })),
    /** Unix ms at which a RECONNECTING session closes unless both sides are back. */
    deadline: optional(integer()),
    capabilities: optional(Capabilities),
  }),
  ice_servers: object({ ice_servers: array(IceServer), expires_at: optional(integer()) }),
  answer: object({ generation: Generation, sdp: Sdp }),
  ice: object({ generation: Generation, candidate: nullable(IceCandidate) }),
  command_status: object({ seq: Sequence, state: oneOf(COMMAND_STATES), error: optional(string()) }),
  message: object({ seq: Sequence, scope: MessageScope, data: json() }),
  error: object({
    code: string(),
    message: string(),
    recoverable: boolean(),
    retry_after: optional(number()),
    /** The client frame this error answers, where there is one (`command` seq, or frame type). */
    ref: optional(json()),
  }),
  pong: object({ t: optional(number()) }),
  /** The `token` frame's token now authorizes this socket, until `expires_at` (Unix seconds). */
  token_accepted: object({ expires_at: integer() }),
});
export type ServerFrame = Infer<typeof ServerFrame>;
