/**
 * Bodies of the gateway's HTTP API. Route handlers validate with these, and the OpenAPI document is generated
 * from them, so the two cannot drift apart.
 */
import { Capabilities, IceServer } from "./common.ts";
import { array, boolean, integer, literal, nullable, object, oneOf, optional, string, type Infer } from "./schema.ts";

export const MAX_TOKEN_LIFETIME_SECONDS = 6 * 60 * 60;

const ModelName = string({ min: 1, max: 128, pattern: /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/ });

/**
 * RFC 9396-style narrowing of a token, as Reactor's scoped tokens carry it. Strict at every level: a misspelt
 * restriction must be refused, never dropped (dropped, it would mint a token with no restriction at all).
 */
export const AuthorizationDetail = object(
  {
    type: literal("session"),
    resources: optional(object({ models: optional(object({ match: array(ModelName, { min: 1, max: 64 }) }, { strict: true })) }, { strict: true })),
    constraints: optional(
      object(
        {
          max_sessions: optional(integer({ min: 1, max: 100_000 })),
          max_session_duration_seconds: optional(
            integer({
              min: 1,
              max: 86_400,
              description: "Ends each session the token creates this long after it is first ACTIVE (as SESSION_MAX_SECONDS).",
            }),
          ),
        },
        { strict: true },
      ),
    ),
  },
  { strict: true },
);
export type AuthorizationDetail = Infer<typeof AuthorizationDetail>;

/** How to narrow a token, told with every UNKNOWN_FIELD of POST /tokens (GET /v1/whoami reports the result). */
export const TOKEN_NARROWING_HINT =
  'Lifetime: "expires_after" (seconds). Narrowing: "authorization_details": [{"type": "session", ' +
  '"resources": {"models": {"match": ["<model>"]}}, "constraints": {"max_sessions": <n>, "max_session_duration_seconds": <s>}}]; ' +
  "GET /v1/whoami shows the result as models, max_sessions and max_session_duration_seconds";

export const TokenRequest = object(
  {
    expires_after: optional(integer({ min: 1, description: `Lifetime in seconds; values above ${MAX_TOKEN_LIFETIME_SECONDS} are clamped.` })),
    authorization_details: optional(array(AuthorizationDetail, { min: 1, max: 8 })),
  },
  { strict: true, hint: TOKEN_NARROWING_HINT },
);
export type TokenRequest = Infer<typeof TokenRequest>;

export const TokenResponse = object({
  jwt: string({ description: "Send as 'Authorization: Bearer <jwt>'." }),
  expires_at: integer({ description: "Unix seconds." }),
});

export const WhoAmIResponse = object({
  account: string(),
  api_key_id: string(),
  token_id: string(),
  expires_at: integer(),
  models: nullable(array(string())),
  max_sessions: nullable(integer()),
  max_session_duration_seconds: nullable(integer()),
});

export const ErrorResponse = object({
  error: object({
    code: string(),
    message: string(),
    recoverable: boolean(),
    retry_after: optional(integer({ min: 0, description: "Seconds; also sent as the Retry-After header." })),
  }),
});

export const HealthResponse = object({ status: literal("ok"), version: string() });

export const CreateApiKeyRequest = object(
  {
    account: string({ min: 1, max: 63, pattern: /^[a-z0-9][a-z0-9_-]*$/ }),
    name: optional(string({ min: 1, max: 100 })),
  },
  { strict: true },
);

const ApiKeyRecordSchema = object({
  id: string(),
  account_id: string(),
  name: string(),
  prefix: string({ description: "The key's first characters, to tell keys apart." }),
  created_at: integer(),
  revoked_at: optional(integer()),
});
export const ApiKeyList = object({ keys: array(ApiKeyRecordSchema) });
export const CreatedApiKeyResponse = object({
  ...ApiKeyRecordSchema.shape,
  key: string({ description: "The full API key. Shown once; store it now." }),
});

export const JwksResponse = object({
  keys: array(object({ kid: string(), kty: string(), alg: oneOf(["ES256", "EdDSA"]) })),
});

/** A model that has at least one GPU runtime connected now (GET /v1/models). */
export const ModelSummary = object({
  name: string(),
  version: optional(string({ description: "The model version its runtimes report, when they report one." })),
  capabilities: Capabilities,
  runtimes: integer({ min: 1, description: "Runtimes connected now." }),
  slots: object({
    total: integer({ min: 0, description: "Sessions the connected runtimes can serve at once." }),
    free: integer({ min: 0 }),
  }),
  queue_length: integer({ min: 0, description: "Sessions waiting for a slot." }),
});
export type ModelSummary = Infer<typeof ModelSummary>;

export const ModelsResponse = object({ models: array(ModelSummary) });
export type ModelsResponse = Infer<typeof ModelsResponse>;

/** `POST /v1/turn-credentials`: standard `RTCIceServer[]`, usable as `new RTCPeerConnection({ iceServers })`. */
export const TurnCredentialsResponse = object({
  ice_servers: array(IceServer),
  /** Unix seconds after which the TURN credentials stop working; absent when only STUN is offered. */
  expires_at: optional(integer()),
  provider: oneOf(["coturn", "cloudflare", "stun"] as const),
});
