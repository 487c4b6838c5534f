/**
 * The token attack table: each forged or broken token is refused with 401 and its own error code, on a client route.
 */
import { env } from "cloudflare:workers";
import { base64url, importJWK, SignJWT, type JWK, type JWTPayload } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { generateSigningKey } from "../../src/auth/generate-signing-key.ts";
import { call, errorCode, mintToken, newApiKey } from "./helpers.ts";

const now = () => Math.floor(Date.now() / 1000);
const signer: JWK = JSON.parse(env.JWT_SIGNING_KEYS).keys[0];
let apiKey: { id: string; key: string };

function claims(overrides: JWTPayload = {}): JWTPayload {
  return {
    iss: "reactor-gateway",
    aud: "reactor-clients",
    sub: "attacker",
    key_id: apiKey.id,
    jti: "jti-1",
    iat: now(),
    exp: now() + 600,
    ...overrides,
  };
}

async function sign(payload: JWTPayload, { key = signer, header = {} }: { key?: JWK; header?: Record<string, unknown> } = {}) {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg!, kid: key.kid, ...header })
    .sign(await importJWK(key, key.alg));
}

const encode = (value: unknown) => base64url.encode(JSON.stringify(value));

function tamperPayload(jwt: string): string {
  const [header, , signature] = jwt.split(".");
  return `${header}.${encode(claims({ sub: "someone-else" }))}.${signature}`;
}

function tamperSignature(jwt: string): string {
  const [header, payload, signature] = jwt.split(".") as [string, string, string];
  const flipped = signature[5] === "A" ? "B" : "A";
  return `${header}.${payload}.${signature.slice(0, 5)}${flipped}${signature.slice(6)}`;
}

async function hs256WithPublicKey(): Promise<string> {
  const { d: _, ...publicJwk } = signer;
  const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
  return new SignJWT(claims()).setProtectedHeader({ alg: "HS256", kid: signer.kid }).sign(secret);
}

beforeAll(async () => {
  apiKey = await newApiKey("attacker");
});

const cases: [name: string, token: () => Promise<string> | string, code: string][] = [
  ["alg none", () => `${encode({ alg: "none", kid: signer.kid })}.${encode(claims())}.`, "TOKEN_ALGORITHM_NOT_ALLOWED"],
  ["HS256 signed with the public key", hs256WithPublicKey, "TOKEN_ALGORITHM_NOT_ALLOWED"],
  ["expired", () => sign(claims({ iat: now() - 7200, exp: now() - 3600 })), "TOKEN_EXPIRED"],
  ["nbf in the future", () => sign(claims({ nbf: now() + 3600 })), "TOKEN_NOT_YET_VALID"],
  ["wrong iss", () => sign(claims({ iss: "someone-else" })), "TOKEN_ISSUER_INVALID"],
  ["wrong aud", () => sign(claims({ aud: "another-service" })), "TOKEN_AUDIENCE_INVALID"],
  ["tampered payload", async () => tamperPayload(await sign(claims())), "TOKEN_SIGNATURE_INVALID"],
  ["tampered signature", async () => tamperSignature(await sign(claims())), "TOKEN_SIGNATURE_INVALID"],
  ["another key under our kid", async () => sign(claims(), { key: { ...(await generateSigningKey()), kid: signer.kid } }), "TOKEN_SIGNATURE_INVALID"],
  ["unknown kid", async () => sign(claims(), { key: await generateSigningKey() }), "TOKEN_KEY_UNKNOWN"],
  ["no kid", async () => sign(claims(), { header: { kid: undefined } }), "TOKEN_KEY_UNKNOWN"],
  ["over the size cap", () => sign(claims({ padding: "x".repeat(5000) })), "TOKEN_TOO_LARGE"],
  ["lifetime over 6 h", () => sign(claims({ exp: now() + 6 * 3600 + 60 })), "TOKEN_LIFETIME_TOO_LONG"],
  ["missing sub", () => sign(claims({ sub: undefined })), "TOKEN_CLAIMS_INVALID"],
  ["malformed narrowing", () => sign(claims({ authorization_details: [{ type: "bogus" }] })), "TOKEN_CLAIMS_INVALID"],
  ["API key sent as a bearer token", () => apiKey.key, "API_KEY_SENT_AS_TOKEN"],
  ["garbage", () => "garbage", "TOKEN_MALFORMED"],
  ["three dots of garbage", () => "a.b.c", "TOKEN_MALFORMED"],
  ["base64 header that is not JSON", () => `${base64url.encode("nope")}.${encode(claims())}.sig`, "TOKEN_MALFORMED"],
];

describe("token attack table", () => {
  it.each(cases)("refuses %s", async (_, makeToken, code) => {
    const response = await call("/v1/whoami", { headers: { Authorization: `Bearer ${await makeToken()}` } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe(code);
  });

  it("accepts the untampered control token (so the table tests what it claims)", async () => {
    const response = await call("/v1/whoami", { headers: { Authorization: `Bearer ${await sign(claims())}` } });
    expect(response.status).toBe(200);
  });

  it("refuses a JWT sent as an API key", async () => {
    const { jwt } = await mintToken(apiKey.key);
    const response = await call("/tokens", { method: "POST", headers: { "Reactor-API-Key": jwt } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe("JWT_SENT_AS_API_KEY");
  });

  it("refuses a client JWT on the admin API", async () => {
    const { jwt } = await mintToken(apiKey.key);
    const response = await call("/admin/keys", { headers: { Authorization: `Bearer ${jwt}` } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe("ADMIN_UNAUTHORIZED");
  });
});
