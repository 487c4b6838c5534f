/**
 * The limit checks on the request paths: a session slot on POST /sessions, and the mint rate on POST /tokens.
 * Each is one call to the account's AccountLimits object; a refusal becomes the ApiError the client sees: 429
 * RATE_LIMITED with Retry-After (a rate window), 429 CONCURRENCY_LIMIT without one (all concurrent sessions in use),
 * or 403 TOKEN_SESSION_LIMIT (a token's spent session cap).
 */
import type { ClientPrincipal } from "../auth/tokens.ts";
import type { LimitSettings } from "../config.ts";
import { accountLimits, unwrap, type SlotRequest } from "../objects.ts";

/** A slot for a new session of `model` (concurrency, creation rates, the token's max_sessions), or an ApiError. */
export async function acquireCreationSlot(env: Env, principal: ClientPrincipal, sessionId: string, model: string): Promise<LimitSettings> {
  const request: SlotRequest = {
    accountId: principal.accountId,
    sessionId,
    model,
    epoch: 0,
    creation: { tokenId: principal.tokenId, tokenExpiresAt: principal.expiresAt, maxSessions: principal.maxSessions },
  };
  return unwrap(await accountLimits(env, principal.accountId).acquire(request));
}

/** Counts one TURN credential issued to the account against its per-minute rate, or throws 429. */
export async function checkTurnRate(env: Env, accountId: string, subject: string): Promise<void> {
  unwrap(await accountLimits(env, accountId).recordTurnIssue(accountId, subject));
}

/** Counts one token mint against the API key's per-minute rate, or throws 429. */
export async function checkMintRate(env: Env, accountId: string, apiKeyId: string): Promise<void> {
  unwrap(await accountLimits(env, accountId).recordMint(accountId, apiKeyId));
}
