/** Settings read from the Worker's environment, with their defaults. */

export const API_VERSIONS = { min: 1, max: 1 } as const;
export const WEBRTC_VERSIONS = { min: 1, max: 1 } as const; // major versions of Reactor-WebRTC-Version
export const GATEWAY_VERSION = "0.1.0";

/** A JWT larger than this is refused before any parsing or crypto. */
export const MAX_TOKEN_CHARS = 4096;
/** Tolerated clock skew between the signer and the verifier, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 5;

export const DEFAULT_ISSUER = "reactor-gateway";
export const DEFAULT_AUDIENCE = "reactor-clients";

export function tokenIssuer(env: Env): string {
  return env.TOKEN_ISSUER || DEFAULT_ISSUER;
}

export function tokenAudience(env: Env): string {
  return env.TOKEN_AUDIENCE || DEFAULT_AUDIENCE;
}
