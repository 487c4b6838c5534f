/** Shapes shared by the client, gateway and runtime protocols. */
import { array, integer, json, nullable, number, object, oneOf, optional, record, string, type Infer } from "./schema.ts";

/** Bumped when a frame changes incompatibly; sent in every handshake. Variants are only ever appended. */
export const PROTOCOL_VERSION = 1;

export const LIMITS = {
  /** Largest WebSocket frame accepted from anyone. */
  frameBytes: 256 * 1024,
  /** Largest SDP offer or answer. */
  sdpChars: 64 * 1024,
  /** Largest single ICE candidate line. */
  candidateChars: 2048,
  /** Most ICE candidates accepted per peer connection generation, from each side. */
  candidatesPerGeneration: 256,
  /** Most candidates in one REST trickle request. */
  candidatesPerRequest: 64,
  /**
   * Largest `extra_args` of a session, as UTF-8 JSON: well under `frameBytes`, so the `session` frame that carries
   * them to the runtime (with its ICE servers) always fits in one frame the runtime accepts.
   */
  extraArgsBytes: 64 * 1024,
} as const;

/** Whether `value` as UTF-8 JSON takes at most `maxBytes` (a UTF-16 unit is 1–3 bytes: only long text is encoded). */
export function jsonFits(value: unknown, maxBytes: number): boolean {
  const text = JSON.stringify(value) ?? "";
  if (text.length * 3 <= maxBytes) return true;
  return text.length <= maxBytes && new TextEncoder().encode(text).byteLength <= maxBytes;
}

export const SESSION_STATES = ["CREATED", "WAITING", "ACTIVE", "RECONNECTING", "CLOSED", "INACTIVE"] as const;
export type SessionState = (typeof SESSION_STATES)[number];
export const SessionState = oneOf(SESSION_STATES);

export const ModelName = string({ min: 1, max: 128, pattern: /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/ });

export const TrackCapability = object({
  name: string({ min: 1, max: 64 }),
  kind: oneOf(["video", "audio"]),
  direction: oneOf(["recvonly", "sendonly"]),
});

export const CommandCapability = object({
  name: string({ min: 1, max: 128 }),
  description: string({ max: 1024 }),
  schema: optional(json("JSON Schema of the command's data.")),
  /** Parameters that take an uploaded file (a FileRef in the command's `uploads` section). */
  uploads: optional(array(string({ min: 1, max: 128 }), { max: 16 })),
});

export const Capabilities = object({
  protocol_version: string({ max: 16 }),
  tracks: array(TrackCapability, { max: 16 }),
  commands: optional(array(CommandCapability, { max: 256 })),
  emission_fps: optional(nullable(number({ min: 0, max: 1000 }))),
});
export type Capabilities = Infer<typeof Capabilities>;

export const Sdp = string({ min: 1, max: LIMITS.sdpChars });

/** One ICE candidate, as `RTCIceCandidateInit` with snake_case names; `candidate: ""` ends gathering. */
export const IceCandidate = object({
  candidate: string({ max: LIMITS.candidateChars }),
  sdp_mid: optional(nullable(string({ max: 64 }))),
  sdp_mline_index: optional(nullable(integer({ min: 0, max: 255 }))),
});
export type IceCandidate = Infer<typeof IceCandidate>;

/** An ICE server in the browser's own `RTCIceServer` shape. */
export const IceServer = object({
  urls: array(string({ min: 1, max: 512 }), { min: 1, max: 16 }),
  username: optional(string({ max: 512 })),
  credential: optional(string({ max: 512 })),
});
export type IceServer = Infer<typeof IceServer>;

/**
 * A file uploaded to the session (POST /sessions/{id}/uploads, then PUT), as a command refers to it. The gateway
 * checks every reference against its record before the model sees it (docs/uploads.md): loose here on purpose, so a
 * bad reference is refused with a precise upload code rather than as a malformed frame.
 */
export const FileRef = object({
  upload_id: string({ min: 1, max: 256 }),
  name: string({ max: 1024 }),
  mime_type: string({ max: 256 }),
  size: integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
});
export type FileRef = Infer<typeof FileRef>;

export const MAX_UPLOADS_PER_COMMAND = 16;

export const Command = object({
  type: string({ min: 1, max: 128 }),
  data: optional(json()),
  /** Files the command takes, by parameter name (the official client's wire shape). */
  uploads: optional(record(FileRef, { maxKeys: MAX_UPLOADS_PER_COMMAND })),
});
export type Command = Infer<typeof Command>;

export const COMMAND_POLICIES = ["buffer", "replace", "drop"] as const;
export type CommandPolicy = (typeof COMMAND_POLICIES)[number];

export const COMMAND_STATES = ["waiting", "delivered", "acknowledged", "dropped", "replaced"] as const;
export type CommandState = (typeof COMMAND_STATES)[number];

export const MessageScope = oneOf(["application", "runtime"]);

export const PEER_STATES = ["new", "connecting", "connected", "disconnected", "failed", "closed"] as const;
export type PeerState = (typeof PEER_STATES)[number];

export const Sequence = integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
export const Generation = integer({ min: 1, max: 1_000_000 });
