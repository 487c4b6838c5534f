/**
 * The limit checks on the request paths: a session slot on POST /sessions, and the mint rate on POST /tokens.
 * Each is one call to the account's AccountLimits object; a refusal becomes the ApiError the client sees: 429
 * RATE_LIMITED with Retry-After (a rate window), 429 CONCURRENCY_LIMIT without one (all concurrent sessions in use),
 * or 403 TOKEN_SESSION_LIMIT (a token's spent session cap).
 */
import type { LimitDecision, SlotRequest } from "../../durable-objects/limits/account-limits.ts";
import type { ClientPrincipal } from "../auth/tokens.ts";
import type { LimitSettings } from "../config.ts";
import { ApiError } from "../errors.ts";

export function accountLimits(env: Env, accountId: string) {
  return env.ACCOUNT_LIMITS.get(env.ACCOUNT_LIMITS.idFromName(accountId));
}

/** Throws the refusal as the API error the client sees; returns the account's limits when allowed. */
export function allowed(decision: LimitDecision): LimitSettings {
  if (decision.ok) return decision.limits;
  throw new ApiError(decision.code, decision.message, decision.retryAfter);
}

/** A slot for a new session of `model` (concurrency, creation rates, the token's max_sessions), or an ApiError. */
export async function acquireCreationSlot(env: Env, principal: ClientPrincipal, sessionId: string, model: string): Promise<LimitSettings> {
  const request: SlotRequest = {
    accountId: principal.accountId,
    sessionId,
    model,
    epoch: 0,
    creation: { tokenId: principal.tokenId, tokenExpiresAt: principal.expiresAt, maxSessions: principal.maxSessions },
  };
  return allowed(await accountLimits(env, principal.accountId).acquire(request));
}

/** Counts one TURN credential issued to the account against its per-minute rate, or throws 429. */
export async function checkTurnRate(env: Env, accountId: string, subject: string): Promise<void> {
  allowed(await accountLimits(env, accountId).recordTurnIssue(accountId, subject));
}

/** Counts one token mint against the API key's per-minute rate, or throws 429. */
export async function checkMintRate(env: Env, accountId: string, apiKeyId: string): Promise<void> {
  allowed(await accountLimits(env, accountId).recordMint(accountId, apiKeyId));
}
