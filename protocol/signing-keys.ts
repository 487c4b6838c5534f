/**
 * The JWT_SIGNING_KEYS format: a JWK set of private keys, newest first (`{ "keys": [JWK, ...] }`, or a bare array).
 * The Worker reads it on every isolate; `npm start` and `npm run keys` check and write it. The public halves are
 * served at /.well-known/jwks.json.
 */
import type { JWK } from "jose";
import { fail, ok, type Result } from "./result.ts";

export const SIGNING_ALGORITHMS = ["ES256", "EdDSA"] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** The keys of a JWT_SIGNING_KEYS value, each with a unique kid, an accepted alg and its private part. */
export function parseJwkSet(source: string): Result<JWK[]> {
  const misconfigured = (why: string) => fail("MISCONFIGURED", `JWT_SIGNING_KEYS: ${why}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(source);
  } catch {
    return misconfigured("not JSON");
  }
  const keys = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) return misconfigured("expected { keys: [JWK, ...] } with at least one key");
  const kids = new Set<string>();
  for (const key of keys as JWK[]) {
    if (typeof key?.kid !== "string" || key.kid === "") return misconfigured("every key needs a kid");
    if (kids.has(key.kid)) return misconfigured(`kid ${key.kid} appears twice`);
    kids.add(key.kid);
    if (!SIGNING_ALGORITHMS.includes(key.alg as SigningAlgorithm)) {
      return misconfigured(`key ${key.kid}: alg must be one of ${SIGNING_ALGORITHMS.join(", ")}`);
    }
    if (typeof key.d !== "string") return misconfigured(`key ${key.kid}: a private key (with "d") is required`);
  }
  return ok(keys as JWK[]);
}
