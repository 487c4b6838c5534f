/**
 * The token attack table: each forged or broken token is refused with 401 and its own error code, on a client route
 * and on a WebSocket upgrade. Among them, a token for every error jose can be made to throw (a crit extension it
 * does not support, a malformed header, payload or signature, …), so none of them ever becomes a 500.
 */
import { env } from "cloudflare:workers";
import { base64url, CompactSign, errors as joseErrors, FlattenedSign, importJWK, SignJWT, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { JOSE_ERROR_CODES, joseErrorCode } from "../../src/auth/tokens.ts";
import { generateSigningKey } from "../../lib/signing-keys.ts";
import { ERROR_CODES } from "../../protocol/errors.ts";
import { call, errorCode, mintToken, newApiKey } from "./helpers.ts";
import { upgrade } from "./scripted.ts";

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
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg!, kid: key.kid, ...header }).sign(await importJWK(key, key.alg));
}

const encode = (value: unknown) => base64url.encode(JSON.stringify(value));

function tamperPayload(jwt: string): string {
  const [header, , signature] = jwt.split(".");
  return `${header}.${encode(claims({ sub: "someone-else" }))}.${signature}`;
}

/** A header, claims and a signature that is not one: jose must refuse it before it gets to checking the signature. */
const unsigned = (header: Record<string, unknown>, payload: unknown = claims()) =>
  `${encode({ alg: signer.alg, kid: signer.kid, ...header })}.${encode(payload)}.${"A".repeat(86)}`;

/** Signed by the gateway's own key, over any payload bytes (a JWS that is not a JWT). */
async function signBytes(payload: string, header: Record<string, unknown> = {}): Promise<string> {
  const key = await importJWK(signer, signer.alg);
  const protectedHeader = { alg: signer.alg!, kid: signer.kid, ...header };
  const bytes = new TextEncoder().encode(payload);
  if (header.b64 !== false) return new CompactSign(bytes).setProtectedHeader(protectedHeader).sign(key);
  // An unencoded payload (RFC 7797) travels as is; jose builds those only in the flattened form.
  const flattened = await new FlattenedSign(bytes).setProtectedHeader(protectedHeader).sign(key);
  return `${flattened.protected}.${payload}.${flattened.signature}`;
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
  // What jose checks before the signature (each of these once was a 500 INTERNAL):
  ["an unknown crit extension, garbage signature (JOSENotSupported)", () => unsigned({ crit: ["x-ext"], "x-ext": 1 }), "TOKEN_UNSUPPORTED"],
  ["crit that is not an array (JWSInvalid)", () => unsigned({ crit: "x-ext" }), "TOKEN_MALFORMED"],
  ["crit naming a missing parameter (JWSInvalid)", () => unsigned({ crit: ["b64"] }), "TOKEN_MALFORMED"],
  ["b64 that is not a boolean (JWSInvalid)", () => unsigned({ crit: ["b64"], b64: "no" }), "TOKEN_MALFORMED"],
  ["a signature that is not base64url of anything (JWSInvalid)", () => `${unsigned({}).slice(0, -86)}A`, "TOKEN_MALFORMED"],
  ["a signature over a JSON array, not claims (JWTInvalid)", () => signBytes("[1]"), "TOKEN_MALFORMED"],
  ["a signature over bytes that are not JSON (JWTInvalid)", () => signBytes("not json"), "TOKEN_MALFORMED"],
  ["an unencoded payload, b64 false (JWTInvalid)", () => signBytes("abc", { crit: ["b64"], b64: false }), "TOKEN_MALFORMED"],
  ["no exp (JWTClaimValidationFailed)", () => sign(claims({ exp: undefined })), "TOKEN_CLAIMS_INVALID"],
  ["exp that is not a number (JWTClaimValidationFailed)", () => sign(claims({ exp: "tomorrow" as unknown as number })), "TOKEN_CLAIMS_INVALID"],
];

describe("token attack table", () => {
  const logged: string[] = [];
  beforeAll(() => {
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void logged.push(args.map(String).join(" ")));
  });
  afterAll(() => {
    vi.restoreAllMocks();
    // Refusing a token is routine: no "unhandled error" line (or any error line) for any of them.
    expect(logged).toEqual([]);
  });

  it.each(cases)("refuses %s", async (_, makeToken, code) => {
    const response = await call("/v1/whoami", { headers: { Authorization: `Bearer ${await makeToken()}` } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe(code);
  });

  it.each(cases.filter(([, , code]) => code !== "TOKEN_TOO_LARGE"))("refuses %s on a WebSocket upgrade too", async (_, makeToken, code) => {
    const { response, peer } = await upgrade("/v1/sessions/ses_0123456789abcdefghijkl/signal", {
      "Sec-WebSocket-Protocol": `reactor.v1, bearer.${await makeToken()}`,
    });
    expect(peer).toBeUndefined();
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

describe("every error jose can throw is a 401 with a code", () => {
  const classes = Object.entries(joseErrors) as [string, new (...args: never[]) => Error][];

  it("JOSE_ERROR_CODES has every error class jose exports (a jose upgrade that adds one fails here)", () => {
    expect(classes.length).toBeGreaterThanOrEqual(15);
    for (const [name, errorClass] of classes) {
      expect(
        JOSE_ERROR_CODES.some(([mapped]) => mapped === errorClass),
        name,
      ).toBe(true);
    }
  });

  it.each(classes)("%s maps to a 401 token code (also those this gateway's verification cannot reach)", (name, errorClass) => {
    const error = new (errorClass as unknown as new (message: string) => Error)(`a ${name}`);
    const code = joseErrorCode(error);
    expect(ERROR_CODES[code].status, `${name} → ${code}`).toBe(401);
  });

  it("maps the claim of a claim failure precisely, and re-throws what is not jose's (a bug, not a bad token)", () => {
    const failed = (claim: string, reason = "check_failed") => new joseErrors.JWTClaimValidationFailed("x", {}, claim, reason);
    expect(joseErrorCode(failed("iss"))).toBe("TOKEN_ISSUER_INVALID");
    expect(joseErrorCode(failed("aud"))).toBe("TOKEN_AUDIENCE_INVALID");
    expect(joseErrorCode(failed("nbf"))).toBe("TOKEN_NOT_YET_VALID");
    expect(joseErrorCode(failed("exp", "missing"))).toBe("TOKEN_CLAIMS_INVALID");
    expect(joseErrorCode(new joseErrors.JWTExpired("x", {}, "exp", "check_failed"))).toBe("TOKEN_EXPIRED");
    expect(joseErrorCode(new joseErrors.JOSEAlgNotAllowed("x"))).toBe("TOKEN_ALGORITHM_NOT_ALLOWED");
    expect(joseErrorCode(new joseErrors.JOSENotSupported("x"))).toBe("TOKEN_UNSUPPORTED");
    const bug = new TypeError("not a token problem");
    expect(() => joseErrorCode(bug)).toThrow(bug);
  });
});
