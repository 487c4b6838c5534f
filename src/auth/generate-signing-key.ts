/** Creates a private signing JWK for JWT_SIGNING_KEYS (used by `npm run keys -- signing-key`, `npm start`, tests). */
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { randomId } from "./encoding.ts";
import type { SigningAlgorithm } from "./signing-keys.ts";

export async function generateSigningKey(alg: SigningAlgorithm = "ES256"): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" && { crv: "Ed25519" }) });
  const date = new Date().toISOString().slice(0, 10);
  return { ...(await exportJWK(privateKey)), alg, kid: `${date}-${randomId(6)}` };
}
