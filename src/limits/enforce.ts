/**
 * The limit checks on the request paths: the TURN issuance rate and the mint rate on POST /tokens (a session's slot
 * is taken by the session object itself, on create as on restart). Each is one call to the account's AccountLimits
 * object; a refusal becomes the ApiError the client sees: 429 RATE_LIMITED with Retry-After.
 */
import { accountLimits, unwrap } from "../objects.ts";

/** Counts one TURN credential issued to the account against its per-minute rate, or throws 429. */
export async function checkTurnRate(env: Env, accountId: string, subject: string): Promise<void> {
  unwrap(await accountLimits(env, accountId).recordTurnIssue(accountId, subject));
}

/** Counts one token mint against the API key's per-minute rate, or throws 429. */
export async function checkMintRate(env: Env, accountId: string, apiKeyId: string): Promise<void> {
  unwrap(await accountLimits(env, accountId).recordMint(accountId, apiKeyId));
}
