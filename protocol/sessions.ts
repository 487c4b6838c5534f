/** REST shapes of the session API, as `@reactor-team/js-sdk@2.9.0` speaks it (see ../shared/REACTOR-API.md). */
import { Capabilities, IceCandidate, LIMITS, ModelName, Sdp, SessionState, TrackCapability } from "./common.ts";
import { array, integer, json, object, optional, record, string, type Infer } from "./schema.ts";

const Transport = object({ protocol: string({ max: 32 }), version: string({ max: 16 }) });
const ClientInfo = object({ sdk_version: string({ max: 64 }), sdk_type: string({ max: 32 }) });

export const CreateSessionRequest = object({
  model: object({ name: ModelName }),
  client_info: optional(ClientInfo),
  supported_transports: optional(array(Transport, { max: 8 })),
  extra_args: optional(record(json(), { maxKeys: 64 })),
});
export type CreateSessionRequest = Infer<typeof CreateSessionRequest>;

export const SessionInfo = object({ session_id: string(), state: SessionState, cluster: string() });

export const SessionResponse = object({
  ...SessionInfo.shape,
  model: object({ name: string(), version: optional(string()) }),
  server_info: object({ server_version: string() }),
  selected_transport: optional(Transport),
  capabilities: optional(Capabilities),
  reason: optional(string({ description: "Why the session reached its current state." })),
  queue_position: optional(integer({ min: 0, description: "Sessions ahead of this one while WAITING." })),
});
export type SessionResponse = Infer<typeof SessionResponse>;

export const TerminateSessionRequest = object({ reason: optional(string({ max: 256 })) });

/** One transceiver of the client's offer: which capability track its `mid` carries. */
export const TrackMappingEntry = object({ ...TrackCapability.shape, mid: string({ max: 64 }) });

export const SdpOfferRequest = object({
  sdp_offer: Sdp,
  client_info: optional(ClientInfo),
  track_mapping: optional(array(TrackMappingEntry, { max: 16 })),
});
export type SdpOfferRequest = Infer<typeof SdpOfferRequest>;

export const SdpAnswerResponse = object({ sdp_answer: string(), connection_id: optional(string()) });

export const IceServersResponse = object({
  ice_servers: array(
    object({
      uris: array(string()),
      credentials: optional(object({ username: string(), password: string() })),
    }),
  ),
});

export const CreateConnectionResponse = object({ connection_id: string(), track_map: array(json()) });

export const IceCandidatesRequest = object({
  candidates: array(IceCandidate, { max: LIMITS.candidatesPerRequest }),
  is_final: optional(json()),
});

export const SessionEvent = object({
  at: integer({ description: "Unix ms." }),
  type: string(),
  detail: optional(json()),
});
export const SessionEventsResponse = object({ session_id: string(), events: array(SessionEvent) });

export const ENDED_STATES: readonly SessionState[] = ["CLOSED", "INACTIVE"];
