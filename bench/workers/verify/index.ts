/**
 * Bench Worker for the JWT verification suite. GET /verify?n=N&alg=ES256|EdDSA&mode=ours|repeat|jose|floor verifies
 * the same token N times, in one request:
 *   - ours:  verifyClientToken() from src/auth/tokens.ts as the gateway runs it on a token it has not seen yet (the
 *            full check every time: its cache of verified tokens is bypassed);
 *   - repeat: verifyClientToken() as the gateway runs it on a token it has verified before (cache hit);
 *   - jose:  jose's jwtVerify() alone (signature, iss, aud, exp), to show which part of ours is the library's;
 *   - floor: one bare crypto.subtle.verify() of that token's signature with the same imported public key.
 * Clocks do not advance inside workerd while it computes, so the caller times requests from outside and
 * subtracts an N=0 request (which does all the same work except the loop).
 *
 * Worker code built from the gateway's own sources, so it imports src/ (only the Worker, its Durable Objects, these
 * bench Workers and test/worker may).
 */
import { jwtVerify } from "jose";
import { base64urlDecode } from "./base64url.ts";
import { generateSigningKey } from "../../../lib/signing-keys.ts";
import { signingKeys } from "../../../src/auth/signing-keys.ts";
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from "../../../protocol/signing-keys.ts";
import { mintClientToken, verifyClientToken } from "../../../src/auth/tokens.ts";

const ACCOUNT = "bench";
const MAX_N = 1_000_000;

interface Fixture {
  token: string;
  /** For the floor: the signed bytes, the signature, the public key and WebCrypto parameters jose would use. */
  signingInput: Uint8Array;
  signature: Uint8Array;
  publicKey: CryptoKey;
  params: SubtleCryptoSignAlgorithm;
}

interface Bench {
  env: Env;
  fixtures: Record<SigningAlgorithm, Fixture>;
}

/** The subset of Env that token code reads; the bench Worker has no D1 or Durable Objects. */
function tokenEnv(keys: object[]): Env {
  const env: Pick<Env, "JWT_SIGNING_KEYS" | "TOKEN_ISSUER" | "TOKEN_AUDIENCE"> = {
    JWT_SIGNING_KEYS: JSON.stringify({ keys }),
    TOKEN_ISSUER: "reactor-gateway",
    TOKEN_AUDIENCE: "reactor-clients",
  };
  return env as Env;
}

const PARAMS: Record<SigningAlgorithm, SubtleCryptoSignAlgorithm> = {
  ES256: { name: "ECDSA", hash: "SHA-256" },
  EdDSA: { name: "Ed25519" },
};

async function prepare(): Promise<Bench> {
  const jwks = await Promise.all(SIGNING_ALGORITHMS.map((alg) => generateSigningKey(alg)));
  const tokens = await Promise.all(
    jwks.map(async (jwk) => (await mintClientToken(tokenEnv([jwk]), { accountId: ACCOUNT, apiKeyId: "key_bench" })).jwt),
  );
  // Verification runs against one key set holding both keys, as during a rotation; it stays cached in the isolate.
  const env = tokenEnv(jwks);
  const { verifiers } = await signingKeys(env);
  const fixtures = {} as Record<SigningAlgorithm, Fixture>;
  SIGNING_ALGORITHMS.forEach((alg, index) => {
    const token = tokens[index]!;
    const [header, payload, signature] = token.split(".") as [string, string, string];
    fixtures[alg] = {
      token,
      signingInput: new TextEncoder().encode(`${header}.${payload}`),
      signature: base64urlDecode(signature),
      publicKey: verifiers.get(jwks[index]!.kid!)!.key,
      params: PARAMS[alg],
    };
  });
  return { env, fixtures };
}

let bench: Promise<Bench> | undefined;

async function verifyOurs({ env }: Bench, fixture: Fixture, n: number, cache = false): Promise<void> {
  for (let i = 0; i < n; i++) {
    const principal = await verifyClientToken(env, fixture.token, { cache });
    if (principal.accountId !== ACCOUNT) throw new Error("wrong principal");
  }
}

async function verifyJose({ env }: Bench, fixture: Fixture, n: number): Promise<void> {
  const options = { issuer: env.TOKEN_ISSUER, audience: env.TOKEN_AUDIENCE };
  for (let i = 0; i < n; i++) {
    const { payload } = await jwtVerify(fixture.token, fixture.publicKey, options);
    if (payload.sub !== ACCOUNT) throw new Error("wrong principal");
  }
}

async function verifyFloor(fixture: Fixture, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const ok = await crypto.subtle.verify(fixture.params, fixture.publicKey, fixture.signature, fixture.signingInput);
    if (!ok) throw new Error("signature did not verify");
  }
}

function badRequest(message: string): Response {
  return Response.json({ error: message }, { status: 400 });
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/health") return Response.json({ status: "ok" });
    if (url.pathname !== "/verify") return Response.json({ error: "not found" }, { status: 404 });

    const n = Number(url.searchParams.get("n") ?? "0");
    const alg = url.searchParams.get("alg") as SigningAlgorithm;
    const mode = url.searchParams.get("mode");
    if (!Number.isInteger(n) || n < 0 || n > MAX_N) return badRequest(`n must be an integer from 0 to ${MAX_N}`);
    if (!SIGNING_ALGORITHMS.includes(alg)) return badRequest(`alg must be one of ${SIGNING_ALGORITHMS.join(", ")}`);
    if (mode !== "ours" && mode !== "repeat" && mode !== "floor" && mode !== "jose") return badRequest("mode must be ours, repeat, jose or floor");

    bench ??= prepare();
    const prepared = await bench;
    const fixture = prepared.fixtures[alg];
    // The same warm-up in every request (N=0 included), so the loop below is all that differs between them.
    await verifyOurs(prepared, fixture, 1);
    await verifyOurs(prepared, fixture, 1, true);
    await verifyJose(prepared, fixture, 1);
    await verifyFloor(fixture, 1);
    if (mode === "ours") await verifyOurs(prepared, fixture, n);
    else if (mode === "repeat") await verifyOurs(prepared, fixture, n, true);
    else if (mode === "jose") await verifyJose(prepared, fixture, n);
    else await verifyFloor(fixture, n);
    return Response.json({ n, alg, mode, ok: true });
  },
} satisfies ExportedHandler;
