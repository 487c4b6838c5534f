import { env } from "cloudflare:workers";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { describe, expect, it } from "vitest";
import { revokeApiKey } from "../../lib/api-keys.ts";
import { generateSigningKey } from "../../lib/signing-keys.ts";
import { mintClientToken, verifyClientToken } from "../../src/auth/tokens.ts";
import { createApp } from "../../src/app.ts";
import { bearer, call, errorCode, mintToken, newApiKey } from "./helpers.ts";

const SIX_HOURS = 6 * 60 * 60;
const now = () => Math.floor(Date.now() / 1000);

describe("POST /tokens", () => {
  it("mints a token that verifies, with the documented claims", async () => {
    const key = await newApiKey("roundtrip");
    const { jwt, expires_at } = await mintToken(key.key);
    const claims = decodeJwt(jwt);
    expect(claims).toMatchObject({ iss: "reactor-gateway", aud: "reactor-clients", sub: "roundtrip", key_id: key.id });
    expect(typeof claims.jti).toBe("string");
    expect(claims.exp).toBe(expires_at);
    expect(decodeProtectedHeader(jwt)).toMatchObject({ alg: "ES256", kid: expect.any(String) });

    const whoami = await call("/v1/whoami", { headers: bearer(jwt) });
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toMatchObject({ account: "roundtrip", api_key_id: key.id, expires_at });
  });

  it("defaults to a 6 h lifetime", async () => {
    const key = await newApiKey();
    const { jwt, expires_at } = await mintToken(key.key);
    const { iat, exp } = decodeJwt(jwt);
    expect(exp! - iat!).toBe(SIX_HOURS);
    expect(Math.abs(expires_at - (now() + SIX_HOURS))).toBeLessThanOrEqual(2);
  });

  it("honours a shorter expires_after and clamps a longer one silently", async () => {
    const key = await newApiKey();
    const short = decodeJwt((await mintToken(key.key, { expires_after: 60 })).jwt);
    expect(short.exp! - short.iat!).toBe(60);
    const long = decodeJwt((await mintToken(key.key, { expires_after: 10 * SIX_HOURS })).jwt);
    expect(long.exp! - long.iat!).toBe(SIX_HOURS);
  });

  it("carries scoped-token narrowing as claims", async () => {
    const key = await newApiKey();
    const details = [{ type: "session", resources: { models: { match: ["helios"] } }, constraints: { max_sessions: 2 } }];
    const { jwt } = await mintToken(key.key, { authorization_details: details });
    expect(decodeJwt(jwt).authorization_details).toEqual(details);
    const whoami = await call("/v1/whoami", { headers: bearer(jwt) });
    expect(await whoami.json()).toMatchObject({ models: ["helios"], max_sessions: 2 });
  });

  it.each([
    ["malformed JSON", "{nope", "INVALID_JSON"],
    ["a fractional expires_after", { expires_after: 1.5 }, "INVALID_REQUEST"],
    ["a zero expires_after", { expires_after: 0 }, "INVALID_REQUEST"],
    ["a negative expires_after", { expires_after: -5 }, "INVALID_REQUEST"],
    ["a string expires_after", { expires_after: "60" }, "INVALID_REQUEST"],
    ["a JSON array", [1], "INVALID_REQUEST"],
    ["an unknown authorization_details type", { authorization_details: [{ type: "admin" }] }, "INVALID_REQUEST"],
  ])("refuses %s with 400", async (_, body, code) => {
    const key = await newApiKey();
    const response = await call("/tokens", {
      method: "POST",
      headers: { "Reactor-API-Key": key.key },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe(code);
  });

  it("carries max_session_duration_seconds (the newer official clients' constraint); the smallest of several wins", async () => {
    const key = await newApiKey();
    const { jwt } = await mintToken(key.key, {
      authorization_details: [
        { type: "session", constraints: { max_sessions: 3, max_session_duration_seconds: 1800 } },
        { type: "session", constraints: { max_session_duration_seconds: 600 } },
      ],
    });
    const whoami = await call("/v1/whoami", { headers: bearer(jwt) });
    expect(await whoami.json()).toMatchObject({ models: null, max_sessions: 3, max_session_duration_seconds: 600 });
    for (const seconds of [0, 86_401, 1.5]) {
      const response = await call("/tokens", {
        method: "POST",
        headers: { "Reactor-API-Key": key.key },
        body: JSON.stringify({ authorization_details: [{ type: "session", constraints: { max_session_duration_seconds: seconds } }] }),
      });
      expect(response.status, String(seconds)).toBe(400);
      expect(await errorCode(response)).toBe("INVALID_REQUEST");
    }
  });

  it.each([
    [
      "flat narrowing fields (the issue's body)",
      { models: ["demo"], max_sessions: 1, ttl_seconds: 60 },
      "$",
      ['"models"', '"max_sessions"', '"ttl_seconds"'],
    ],
    ["a name Object.prototype has", { constructor: 1 }, "$", ['"constructor"']],
    [
      "a misspelt resources field",
      { authorization_details: [{ type: "session", resources: { model: { match: ["demo"] } } }] },
      "$.authorization_details[0].resources",
      ['"model"'],
    ],
    [
      "a misspelt models field",
      { authorization_details: [{ type: "session", resources: { models: { names: ["demo"] } } }] },
      "$.authorization_details[0].resources.models",
      ['"names"'],
    ],
    [
      "an unknown constraint",
      { authorization_details: [{ type: "session", constraints: { max_session: 1 } }] },
      "$.authorization_details[0].constraints",
      ['"max_session"'],
    ],
  ])("refuses %s with 400 UNKNOWN_FIELD naming every unknown field and the real ones; nothing is minted", async (_, body, path, named) => {
    const key = await newApiKey();
    const response = await call("/tokens", { method: "POST", headers: { "Reactor-API-Key": key.key }, body: JSON.stringify(body) });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("UNKNOWN_FIELD");
    expect(error.message.startsWith(`${path}: unknown field`)).toBe(true);
    for (const name of named) expect(error.message).toContain(name);
    if (path === "$") expect(error.message).toContain('the fields here are "expires_after", "authorization_details"');
    if (path === "$")
      expect(error.message).toContain(
        '"resources": {"models": {"match": ["<model>"]}}, "constraints": {"max_sessions": <n>, "max_session_duration_seconds": <s>}',
      );
  });

  it("takes a JSON null body as no body (the newer official clients send null for an unrestricted token)", async () => {
    const key = await newApiKey();
    const response = await call("/tokens", {
      method: "POST",
      headers: { "Reactor-API-Key": key.key, "Content-Type": "application/json" },
      body: "null",
    });
    expect(response.status).toBe(200);
  });

  it("refuses a revoked key at once", async () => {
    const key = await newApiKey();
    await mintToken(key.key);
    await revokeApiKey(env.DB, key.id);
    const response = await call("/tokens", { method: "POST", headers: { "Reactor-API-Key": key.key } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe("API_KEY_INVALID");
  });

  it.each([
    ["no key", {}, "API_KEY_MISSING"],
    ["an unknown key", { "Reactor-API-Key": `rk_${"A".repeat(43)}` }, "API_KEY_INVALID"],
    ["garbage", { "Reactor-API-Key": "hello" }, "API_KEY_MALFORMED"],
    ["an empty header", { "Reactor-API-Key": "" }, "API_KEY_MISSING"],
    ["a JWT as the API key", { "Reactor-API-Key": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln" }, "JWT_SENT_AS_API_KEY"],
  ])("refuses %s with 401", async (_, headers, code) => {
    const response = await call("/tokens", { method: "POST", headers });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe(code);
  });

  it("describes a malformed key by the real rule: rk_ and 43 to 128 of A-Z a-z 0-9 _ -", async () => {
    for (const key of ["hello", `rk_${"a".repeat(42)}`, `rk_${"a".repeat(129)}`, `rk_${"a".repeat(42)}+`]) {
      const response = await call("/tokens", { method: "POST", headers: { "Reactor-API-Key": key } });
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error, key).toMatchObject({
        code: "API_KEY_MALFORMED",
        message: "An API key is rk_ followed by 43 to 128 characters of A-Z, a-z, 0-9, _ and -.",
      });
    }
    // Both ends of the rule are keys (unknown here, but well-formed).
    for (const key of [`rk_${"a".repeat(43)}`, `rk_${"-_".repeat(64)}`]) {
      expect(await errorCode(await call("/tokens", { method: "POST", headers: { "Reactor-API-Key": key } })), key).toBe("API_KEY_INVALID");
    }
  });

  it("refuses an API key sent in Authorization", async () => {
    const key = await newApiKey();
    const response = await call("/tokens", { method: "POST", headers: { Authorization: `Bearer ${key.key}` } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe("API_KEY_MISSING");
  });
});

describe("token verification", () => {
  it("rejects an expired token", async () => {
    const key = await newApiKey("expiry");
    const { jwt } = await mintClientToken(env, { accountId: "expiry", apiKeyId: key.id, lifetimeSeconds: 60, now: now() - 120 });
    await expect(verifyClientToken(env, jwt)).rejects.toMatchObject({ code: "TOKEN_EXPIRED" });
  });

  it("rotates: new tokens use the newest key, tokens of older keys still verify, retired keys do not", async () => {
    const [older] = JSON.parse(env.JWT_SIGNING_KEYS).keys;
    const newer = await generateSigningKey("EdDSA");
    const rotated = { ...env, JWT_SIGNING_KEYS: JSON.stringify({ keys: [newer, older] }) };
    const retired = { ...env, JWT_SIGNING_KEYS: JSON.stringify({ keys: [newer] }) };
    const key = await newApiKey("rotation");

    const oldToken = (await mintToken(key.key)).jwt;
    const app = createApp();
    const mint = await app.request("/tokens", { method: "POST", headers: { "Reactor-API-Key": key.key } }, rotated);
    const newToken = ((await mint.json()) as { jwt: string }).jwt;
    expect(decodeProtectedHeader(newToken)).toMatchObject({ kid: newer.kid, alg: "EdDSA" });

    for (const [token, environment, status] of [
      [newToken, rotated, 200],
      [oldToken, rotated, 200],
      [newToken, retired, 200],
      [oldToken, retired, 401],
    ] as const) {
      const response = await app.request("/v1/whoami", { headers: bearer(token) }, environment);
      expect(response.status).toBe(status);
      if (status === 401) expect(await errorCode(response)).toBe("TOKEN_KEY_UNKNOWN");
    }
  });

  it("a token verified before is answered from the cache only while the full check would pass", async () => {
    const key = await newApiKey("cached");
    // Valid now only thanks to the clock tolerance (5 s): expired for good 2 s from now.
    const { jwt } = await mintClientToken(env, { accountId: "cached", apiKeyId: key.id, lifetimeSeconds: 60, now: now() - 63 });
    expect(await verifyClientToken(env, jwt)).toMatchObject({ accountId: "cached", apiKeyId: key.id });
    expect(await verifyClientToken(env, jwt)).toMatchObject({ accountId: "cached" });
    await expect(verifyClientToken({ ...env, TOKEN_AUDIENCE: "another-gateway" }, jwt)).rejects.toMatchObject({ code: "TOKEN_AUDIENCE_INVALID" });
    await expect(verifyClientToken({ ...env, TOKEN_ISSUER: "https://other.example" }, jwt)).rejects.toMatchObject({ code: "TOKEN_ISSUER_INVALID" });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await expect(verifyClientToken(env, jwt)).rejects.toMatchObject({ code: "TOKEN_EXPIRED" });
  });

  it("publishes public keys only at /.well-known/jwks.json", async () => {
    const response = await call("/.well-known/jwks.json");
    const { keys } = (await response.json()) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kid: expect.any(String), alg: "ES256", use: "sig" });
    expect(keys[0]).not.toHaveProperty("d");
  });
});

describe("requests without a usable bearer token", () => {
  it.each([
    ["no Authorization header", {}, "TOKEN_MISSING"],
    ["an empty bearer", { Authorization: "Bearer " }, "TOKEN_MISSING"],
    ["a non-bearer scheme", { Authorization: "Basic dXNlcjpwYXNz" }, "TOKEN_MISSING"],
    ["garbage", { Authorization: "Bearer not-a-token" }, "TOKEN_MALFORMED"],
    ["an API key in the Reactor-API-Key header", { "Reactor-API-Key": `rk_${"B".repeat(43)}` }, "API_KEY_SENT_AS_TOKEN"],
  ])("refuses %s", async (_, headers, code) => {
    const response = await call("/v1/whoami", { headers });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe(code);
  });

  it("accepts the token as a WebSocket subprotocol", async () => {
    const key = await newApiKey();
    const { jwt } = await mintToken(key.key);
    const response = await call("/v1/whoami", { headers: { "Sec-WebSocket-Protocol": `reactor.v1, bearer.${jwt}` } });
    expect(response.status).toBe(200);
  });
});

it("serves errors with CORS headers so browsers can read them", async () => {
  const response = await call("/v1/whoami", { headers: { Origin: "https://app.example" } });
  expect(response.status).toBe(401);
  expect(response.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
});
