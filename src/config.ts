/**
 * Settings read from the Worker's environment, with their defaults: the one place defaults are written. A var of
 * the same name overrides a value (wrangler.toml [vars] holds only what local development needs; src/env.d.ts
 * declares every setting). Each reader takes just the vars it reads, so a test or bench can pass a plain object.
 */

export const API_VERSIONS = { min: 1, max: 1 } as const;
export const WEBRTC_VERSIONS = { min: 1, max: 1 } as const; // major versions of Reactor-WebRTC-Version
export const GATEWAY_VERSION = "0.1.0";

/** A JWT larger than this is refused before any parsing or crypto. */
export const MAX_TOKEN_CHARS = 4096;
/** Tolerated clock skew between the signer and the verifier, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 5;

export const DEFAULT_ISSUER = "reactor-gateway";
export const DEFAULT_AUDIENCE = "reactor-clients";

export function tokenIssuer(env: SettingsEnv<"TOKEN_ISSUER">): string {
  return env.TOKEN_ISSUER || DEFAULT_ISSUER;
}

export function tokenAudience(env: SettingsEnv<"TOKEN_AUDIENCE">): string {
  return env.TOKEN_AUDIENCE || DEFAULT_AUDIENCE;
}

/** Session timing and buffer limits; every value can be overridden by a var of the same name in wrangler.toml. */
export interface SessionSettings {
  graceMs: number;
  maxDurationMs: number;
  queueWaitMs: number;
  connectMs: number;
  longPollMs: number;
  commandBufferCount: number;
  commandBufferBytes: number;
  messageBufferCount: number;
  messageBufferBytes: number;
  heartbeatIntervalMs: number;
  retentionMs: number;
}

type SettingsEnv<K extends keyof Env> = Partial<Pick<Env, K>>;

function numberVar<K extends keyof Env>(env: SettingsEnv<K>, name: K, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got ${String(raw)}`);
  return value;
}

type SessionVar =
  | "SESSION_GRACE_SECONDS"
  | "SESSION_MAX_SECONDS"
  | "SESSION_QUEUE_WAIT_SECONDS"
  | "SESSION_CONNECT_SECONDS"
  | "LONG_POLL_MS"
  | "COMMAND_BUFFER_COUNT"
  | "COMMAND_BUFFER_BYTES"
  | "MESSAGE_BUFFER_COUNT"
  | "MESSAGE_BUFFER_BYTES"
  | "RUNTIME_HEARTBEAT_MS"
  | "SESSION_RETENTION_SECONDS";

export function sessionSettings(env: SettingsEnv<SessionVar>): SessionSettings {
  return {
    graceMs: numberVar(env, "SESSION_GRACE_SECONDS", 30) * 1000,
    maxDurationMs: numberVar(env, "SESSION_MAX_SECONDS", 1200) * 1000,
    queueWaitMs: numberVar(env, "SESSION_QUEUE_WAIT_SECONDS", 600) * 1000,
    connectMs: numberVar(env, "SESSION_CONNECT_SECONDS", 60) * 1000,
    longPollMs: numberVar(env, "LONG_POLL_MS", 5000),
    commandBufferCount: numberVar(env, "COMMAND_BUFFER_COUNT", 256),
    commandBufferBytes: numberVar(env, "COMMAND_BUFFER_BYTES", 1024 * 1024),
    messageBufferCount: numberVar(env, "MESSAGE_BUFFER_COUNT", 1024),
    messageBufferBytes: numberVar(env, "MESSAGE_BUFFER_BYTES", 4 * 1024 * 1024),
    heartbeatIntervalMs: numberVar(env, "RUNTIME_HEARTBEAT_MS", 5000),
    retentionMs: numberVar(env, "SESSION_RETENTION_SECONDS", 24 * 3600) * 1000,
  };
}

/**
 * Account limits: what every account gets unless its row in the D1 table `account_limits` overrides a value
 * (see docs/limits-and-billing.md). The maximum session length is SESSION_MAX_SECONDS.
 */
export interface LimitSettings {
  concurrentSessions: number;
  /** Per model. */
  sessionCreationsPerMinute: number;
  /** Across the account's models: the per-model rate alone is multiplied by every name a client cares to use. */
  accountSessionCreationsPerMinute: number;
  tokenMintsPerMinute: number;
  turnCredentialsPerMinute: number;
  maxSessionSeconds: number;
}

type LimitVar =
  | "LIMIT_CONCURRENT_SESSIONS"
  | "LIMIT_SESSION_CREATIONS_PER_MINUTE"
  | "LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE"
  | "LIMIT_TOKEN_MINTS_PER_MINUTE"
  | "LIMIT_TURN_CREDENTIALS_PER_MINUTE"
  | "SESSION_MAX_SECONDS";

export function limitDefaults(env: SettingsEnv<LimitVar>): LimitSettings {
  return {
    concurrentSessions: numberVar(env, "LIMIT_CONCURRENT_SESSIONS", 5),
    sessionCreationsPerMinute: numberVar(env, "LIMIT_SESSION_CREATIONS_PER_MINUTE", 50),
    accountSessionCreationsPerMinute: numberVar(env, "LIMIT_ACCOUNT_SESSION_CREATIONS_PER_MINUTE", 100),
    tokenMintsPerMinute: numberVar(env, "LIMIT_TOKEN_MINTS_PER_MINUTE", 120),
    turnCredentialsPerMinute: numberVar(env, "LIMIT_TURN_CREDENTIALS_PER_MINUTE", 60),
    maxSessionSeconds: numberVar(env, "SESSION_MAX_SECONDS", 1200),
  };
}

/** Metering: a session with no command for this long counts as idle (still billed). Prices: src/metering/prices.ts. */
export function meterIdleMs(env: SettingsEnv<"METER_IDLE_SECONDS">): number {
  return numberVar(env, "METER_IDLE_SECONDS", 60) * 1000;
}

export const DEFAULT_STUN_URLS = "stun:stun.cloudflare.com:3478";

/** File uploads (docs/uploads.md); each value can be overridden by the var of the same name. */
export interface UploadSettings {
  /** Largest file, in bytes (UPLOAD_MAX_BYTES). Keep it under the plan's request body limit (100 MB on most). */
  maxBytes: number;
  /** Accepted MIME types: `type/subtype`, `type/*` or `*` (UPLOAD_ALLOWED_TYPES, comma-separated). */
  allowedTypes: readonly string[];
  /** How long a presigned URL is valid (UPLOAD_URL_TTL_SECONDS). */
  urlTtlMs: number;
  /** Uploads one session may create (UPLOAD_MAX_PER_SESSION). */
  maxPerSession: number;
}

export const DEFAULT_UPLOAD_TYPES = "image/*,video/*,audio/*,application/octet-stream";

type UploadVar = "UPLOAD_MAX_BYTES" | "UPLOAD_ALLOWED_TYPES" | "UPLOAD_URL_TTL_SECONDS" | "UPLOAD_MAX_PER_SESSION";

export function uploadSettings(env: SettingsEnv<UploadVar>): UploadSettings {
  const types =
    typeof env.UPLOAD_ALLOWED_TYPES === "string" && env.UPLOAD_ALLOWED_TYPES.trim() !== "" ? env.UPLOAD_ALLOWED_TYPES : DEFAULT_UPLOAD_TYPES;
  return {
    maxBytes: numberVar(env, "UPLOAD_MAX_BYTES", 50 * 1024 * 1024),
    allowedTypes: types
      .split(",")
      .map((type) => type.trim().toLowerCase())
      .filter(Boolean),
    urlTtlMs: numberVar(env, "UPLOAD_URL_TTL_SECONDS", 600) * 1000,
    maxPerSession: numberVar(env, "UPLOAD_MAX_PER_SESSION", 100),
  };
}
