/**
 * Token signing keys, from the JWT_SIGNING_KEYS secret: a JWK set of private keys, newest first.
 *   - New tokens are signed with the first key.
 *   - Tokens signed by any key still in the set verify; removing a key from the set retires it.
 * Keys are imported once per isolate (and again only when the secret's value changes), never per request.
 */
import { importJWK, type JWK } from "jose";
import { ApiError } from "../errors.ts";

export const SIGNING_ALGORITHMS = ["ES256", "EdDSA"] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export interface VerificationKey {
  kid: string;
  alg: SigningAlgorithm;
  key: CryptoKey;
}

export interface SigningKeySet {
  signer: { kid: string; alg: SigningAlgorithm; key: CryptoKey };
  verifiers: Map<string, VerificationKey>;
  algorithms: SigningAlgorithm[];
  /** Public halves, as served at /.well-known/jwks.json. */
  publicJwks: JWK[];
}

let cache: { source: string; keys: Promise<SigningKeySet> } | undefined;

export function signingKeys(env: { JWT_SIGNING_KEYS?: string }): Promise<SigningKeySet> {
  const source = env.JWT_SIGNING_KEYS;
  if (!source) {
    return Promise.reject(new ApiError("MISCONFIGURED", "JWT_SIGNING_KEYS is not set (see README: Configuration)."));
  }
  if (cache?.source !== source) {
    const keys = importKeySet(source);
    cache = { source, keys };
    keys.catch(() => {
      if (cache?.keys === keys) cache = undefined; // a bad secret is re-read on the next request, not cached forever
    });
  }
  return cache.keys;
}

async function importKeySet(source: string): Promise<SigningKeySet> {
  const jwks = parseJwkSet(source);
  const imported = await Promise.all(
    jwks.map(async (jwk) => {
      const { d: _private, ...publicJwk } = jwk;
      const alg = jwk.alg as SigningAlgorithm;
      const [privateKey, publicKey] = await Promise.all([importJWK(jwk, alg), importJWK(publicJwk, alg)]);
      return { kid: jwk.kid!, alg, privateKey: privateKey as CryptoKey, publicKey: publicKey as CryptoKey, publicJwk };
    }),
  );
  const newest = imported[0]!;
  return {
    signer: { kid: newest.kid, alg: newest.alg, key: newest.privateKey },
    verifiers: new Map(imported.map(({ kid, alg, publicKey }) => [kid, { kid, alg, key: publicKey }])),
    algorithms: [...new Set(imported.map(({ alg }) => alg))],
    publicJwks: imported.map(({ publicJwk, kid, alg }) => ({ ...publicJwk, kid, alg, use: "sig" })),
  };
}

function parseJwkSet(source: string): JWK[] {
  const misconfigured = (why: string) => new ApiError("MISCONFIGURED", `JWT_SIGNING_KEYS: ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch {
    throw misconfigured("not JSON");
  }
  const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw misconfigured("expected { keys: [JWK, ...] } with at least one key");
  const kids = new Set<string>();
  for (const key of keys as JWK[]) {
    if (typeof key?.kid !== "string" || key.kid === "") throw misconfigured("every key needs a kid");
    if (kids.has(key.kid)) throw misconfigured(`kid ${key.kid} appears twice`);
    kids.add(key.kid);
    if (!SIGNING_ALGORITHMS.includes(key.alg as SigningAlgorithm)) {
      throw misconfigured(`key ${key.kid}: alg must be one of ${SIGNING_ALGORITHMS.join(", ")}`);
    }
    if (typeof key.d !== "string") throw misconfigured(`key ${key.kid}: a private key (with "d") is required`);
  }
  return keys as JWK[];
}
