/**
 * The GPU runtime's two sockets, both opened outbound by the runtime:
 *   - the control socket to its model's pool (`GET /v1/runtime/connect`): registration, capacity, heartbeats and
 *     session assignments;
 *   - one session socket per assigned session (`GET /v1/runtime/sessions/{id}`): SDP, ICE, commands, messages.
 */
import {
  Capabilities,
  Command,
  Generation,
  IceCandidate,
  IceServer,
  MessageScope,
  ModelName,
  PEER_STATES,
  Sdp,
  Sequence,
  SessionState,
} from "./common.ts";
import { array, boolean, integer, json, nullable, object, oneOf, optional, string, union, type Infer } from "./schema.ts";

/** Sent as-is by runtimes; answered by the pool without waking it (WebSocket auto-response). */
export const HEARTBEAT_REQUEST = '{"type":"heartbeat"}';
export const HEARTBEAT_RESPONSE = '{"type":"heartbeat_ack"}';

export const RuntimeId = string({ min: 1, max: 128, pattern: /^[A-Za-z0-9._:-]+$/ });

export const RuntimeControlFrame = union("type", {
  register: object({
    runtime_id: RuntimeId,
    model: object({ name: ModelName, version: optional(string({ max: 64 })) }),
    capabilities: Capabilities,
    slots: integer({ min: 0, max: 1024 }),
    /** Sessions this runtime still serves after a reconnect of its own. */
    sessions: optional(array(string({ max: 128 }), { max: 1024 })),
  }),
  capacity: object({ slots: integer({ min: 0, max: 1024 }) }),
});
export type RuntimeControlFrame = Infer<typeof RuntimeControlFrame>;

export const PoolFrame = union("type", {
  registered: object({ runtime_id: RuntimeId, heartbeat_interval_ms: integer() }),
  /** Open a session socket for this session and serve it. */
  assign: object({ session_id: string(), extra_args: optional(json()) }),
  error: object({ code: string(), message: string() }),
});
export type PoolFrame = Infer<typeof PoolFrame>;

export const RuntimeSessionFrame = union("type", {
  /** First frame. `command_seq`: the highest command seq the runtime has processed (0 if none). */
  hello: object({ runtime_id: RuntimeId, command_seq: integer({ min: 0 }) }),
  answer: object({ generation: Generation, sdp: Sdp }),
  ice: object({ generation: Generation, candidate: nullable(IceCandidate) }),
  /** The client peer connection's state, as the runtime sees it: how the gateway learns a REST client dropped. */
  peer_state: object({ generation: Generation, state: oneOf(PEER_STATES) }),
  /** Cumulative: every command up to `seq` was handed to the model. */
  command_ack: object({ seq: Sequence }),
  /** A model message for the client, numbered by the runtime from 1 per session. */
  message: object({ seq: Sequence, scope: MessageScope, data: json() }),
  /** The runtime ends the session (model error, shutdown). */
  release: object({ reason: string({ max: 256 }) }),
  /**
   * The runtime could not take a frame the gateway sent (too large, not JSON, not the protocol): it missed part of
   * the session, so the gateway ends it (INACTIVE, reason `runtime_frame_error: <code>`) rather than leave it
   * running without a model. `frame_type`: the unreadable frame's type, when the runtime could tell.
   */
  frame_error: object({ code: string({ max: 64 }), message: optional(string({ max: 1024 })), frame_type: optional(string({ max: 64 })) }),
});
export type RuntimeSessionFrame = Infer<typeof RuntimeSessionFrame>;

export const GatewaySessionFrame = union("type", {
  session: object({
    session_id: string(),
    state: SessionState,
    /**
     * Highest model message seq the gateway has; the runtime resends every message newer than this that it still
     * holds, in order, before any new one. Not an acknowledgement: only `message_ack` lets the runtime forget.
     */
    message_seq: integer({ min: 0 }),
    extra_args: optional(json()),
    /** ICE servers for the runtime's peer connections of this session (TURN credentials tied to it, or STUN). */
    ice_servers: optional(array(IceServer)),
  }),
  /**
   * `trickle`: the client takes candidates trickled after the answer (the native socket), so the answer need not wait
   * for ICE gathering. Without it (REST clients) the answer must carry the runtime's candidates.
   */
  offer: object({ generation: Generation, sdp: Sdp, track_mapping: optional(json()), trickle: optional(boolean()) }),
  ice: object({ generation: Generation, candidate: nullable(IceCandidate) }),
  command: object({ seq: Sequence, command: Command }),
  /**
   * Cumulative: model messages up to `seq` are safe at the gateway (stored durably, or acknowledged by the client);
   * the runtime may forget them. It keeps every newer message until then.
   */
  message_ack: object({ seq: integer({ min: 0 }) }),
  /**
   * Send again, in order, every message from `from_seq` on that the runtime still holds, then carry on with new
   * ones. The gateway asks after a gap, and when it cannot prove it holds everything the client may lack (it was
   * evicted and lost what it kept in memory, or refused messages while its buffer was full).
   */
  resend_messages: object({ from_seq: Sequence }),
  /** The session is over: release the GPU. */
  end: object({ reason: string() }),
  error: object({ code: string(), message: string(), ref: optional(json()) }),
});
export type GatewaySessionFrame = Infer<typeof GatewaySessionFrame>;
