/**
 * ICE server providers. Each one turns "who asks, for how long" into short-lived ICE servers; `issueIceServers`
 * (issue.ts) tries the configured ones in order and falls back to STUN only.
 */
import type { IceServer } from "../../protocol/common.ts";

export interface IceServerRequest {
  /** Ties the credential to a session or an account in the TURN server's logs (`<expiry>:<subject>`). */
  subject: string;
  /** Lifetime asked for, already capped by what the requester may have. */
  ttlSeconds: number;
  /** Unix seconds. */
  now: number;
}

export interface IssuedIceServers {
  iceServers: IceServer[];
  /** Unix seconds after which the TURN credentials stop working (absent for STUN only). */
  expiresAt?: number;
  provider: ProviderName;
}

export type ProviderName = "coturn" | "cloudflare" | "stun";

export interface IceServerProvider {
  readonly name: ProviderName;
  issue(request: IceServerRequest): Promise<IssuedIceServers>;
}

/** A provider failure that is worth falling back from; the message is safe to log (never holds a secret). */
export class ProviderError extends Error {
  readonly provider: ProviderName;
  constructor(provider: ProviderName, message: string) {
    super(`${provider}: ${message}`);
    this.provider = provider;
  }
}
