/**
 * Token signing keys, from the JWT_SIGNING_KEYS secret: a JWK set of private keys, newest first.
 *   - New tokens are signed with the first key.
 *   - Tokens signed by any key still in the set verify; removing a key from the set retires it.
 * Keys are imported once per isolate (and again only when the secret's value changes), never per request.
 * The set's format is protocol/signing-keys.ts; importing it is lib/signing-keys.ts (shared with `npm start`).
 */
import { importKeySet, type SigningKeySet } from "../../lib/signing-keys.ts";
import { parseJwkSet } from "../../protocol/signing-keys.ts";
import { ApiError, unwrap } from "../errors.ts";

let cache: { source: string; keys: Promise<SigningKeySet> } | undefined;

export function signingKeys(env: { JWT_SIGNING_KEYS?: string }): Promise<SigningKeySet> {
  const source = env.JWT_SIGNING_KEYS;
  if (!source) {
    return Promise.reject(new ApiError("MISCONFIGURED", "JWT_SIGNING_KEYS is not set (see README: Configuration)."));
  }
  if (cache?.source !== source) {
    const keys = load(source);
    cache = { source, keys };
    keys.catch(() => {
      if (cache?.keys === keys) cache = undefined; // a bad secret is re-read on the next request, not cached forever
    });
  }
  return cache.keys;
}

async function load(source: string): Promise<SigningKeySet> {
  const jwks = parseJwkSet(source);
  return importKeySet(unwrap(jwks));
}
