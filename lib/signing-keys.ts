/**
 * Token signing keys as CryptoKeys, shared by the Worker (src/auth/signing-keys.ts caches them per isolate) and
 * `npm start` (which checks the dev key set before the first POST /tokens would), plus the key generator used by
 * `npm run keys -- signing-key`, `npm start` and the tests. The set's format is protocol/signing-keys.ts.
 */
import { exportJWK, generateKeyPair, importJWK, type JWK } from "jose";
import type { SigningAlgorithm } from "../protocol/signing-keys.ts";
import { randomId } from "./encoding.ts";

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

/** Imports a key set checked by `parseJwkSet`: the first key signs, every key verifies. */
export async function importKeySet(jwks: JWK[]): Promise<SigningKeySet> {
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

/** Creates a private signing JWK for JWT_SIGNING_KEYS. */
export async function generateSigningKey(alg: SigningAlgorithm = "ES256"): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" && { crv: "Ed25519" }) });
  const date = new Date().toISOString().slice(0, 10);
  return { ...(await exportJWK(privateKey)), alg, kid: `${date}-${randomId(6)}` };
}
