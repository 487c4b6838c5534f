/**
 * Client tokens: short-lived JWTs minted from an API key (POST /tokens) and verified at the edge on every request
 * and socket. Every way a token can be wrong maps to its own error code.
 */
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from "jose";
import { randomId } from "../../lib/encoding.ts";
import type { SigningKeySet } from "../../lib/signing-keys.ts";
import { looksLikeApiKey } from "../../protocol/api-keys.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import { AuthorizationDetail, MAX_TOKEN_LIFETIME_SECONDS } from "../../protocol/http.ts";
import { array, integer, object, optional, parse, string } from "../../protocol/schema.ts";
import { SIGNING_ALGORITHMS, type SigningAlgorithm } from "../../protocol/signing-keys.ts";
import { CLOCK_TOLERANCE_SECONDS, MAX_TOKEN_CHARS, tokenAudience, tokenIssuer } from "../config.ts";
import { ApiError } from "../errors.ts";
import { signingKeys } from "./signing-keys.ts";

export const DEFAULT_TOKEN_LIFETIME_SECONDS = MAX_TOKEN_LIFETIME_SECONDS;

/** What a verified token says about its bearer. */
export interface ClientPrincipal {
  accountId: string;
  apiKeyId: string;
  tokenId: string;
  expiresAt: number;
  /** Model names the token is narrowed to, or null for every model. */
  models: string[] | null;
  /** Most sessions this token may ever create, or null for no token-level cap. */
  maxSessions: number | null;
  /** Longest any of its sessions may run (seconds, from first ACTIVE), or null for the account's limit alone. */
  maxSessionSeconds: number | null;
}

const ClientClaims = object({
  sub: string({ min: 1, max: 63 }),
  key_id: string({ min: 1, max: 64 }),
  jti: string({ min: 1, max: 64 }),
  iat: integer(),
  exp: integer(),
  authorization_details: optional(array(AuthorizationDetail, { max: 8 })),
});

export interface MintOptions {
  accountId: string;
  apiKeyId: string;
  lifetimeSeconds?: number;
  authorizationDetails?: AuthorizationDetail[];
  now?: number;
}

export async function mintClientToken(env: Env, options: MintOptions): Promise<{ jwt: string; expires_at: number }> {
  const { signer } = await signingKeys(env);
  const issuedAt = options.now ?? Math.floor(Date.now() / 1000);
  const lifetime = Math.min(options.lifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS, MAX_TOKEN_LIFETIME_SECONDS);
  const expiresAt = issuedAt + lifetime;
  const jwt = await new SignJWT({
    key_id: options.apiKeyId,
    ...(options.authorizationDetails && { authorization_details: options.authorizationDetails }),
  })
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: "JWT" })
    .setIssuer(tokenIssuer(env))
    .setAudience(tokenAudience(env))
    .setSubject(options.accountId)
    .setJti(randomId(16))
    .setIssuedAt(issuedAt)
    .setExpirationTime(expiresAt)
    .sign(signer.key);
  return { jwt, expires_at: expiresAt };
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Tokens this isolate has already verified, by their exact text. A client presents the same token on every request
 * and socket (the official client polls with it), and a signature check is the most expensive step of a request.
 * One cache per signing key set, so a key rotation starts afresh; an entry is good until its token expires, as the
 * full check would say (nothing else can make a verified token invalid: they are not revocable one by one).
 */
const VERIFIED_TOKENS_MAX = 4096;
const verifiedTokens = new WeakMap<SigningKeySet, Map<string, ClientPrincipal>>();

/** `cache: false` checks the signature and claims even for a token verified before (benchmarks measure that path). */
export async function verifyClientToken(env: Env, token: string, { cache = true } = {}): Promise<ClientPrincipal> {
  if (token.length > MAX_TOKEN_CHARS) throw new ApiError("TOKEN_TOO_LARGE");
  if (looksLikeApiKey(token)) throw new ApiError("API_KEY_SENT_AS_TOKEN");
  if (!JWT_SHAPE.test(token)) throw new ApiError("TOKEN_MALFORMED");

  const keys = await signingKeys(env);
  if (!cache) return verifyAgainst(env, keys, token);
  let verified = verifiedTokens.get(keys);
  if (!verified) {
    verified = new Map();
    verifiedTokens.set(keys, verified);
  }
  // Issuer and audience are part of what was checked: the same text under other settings is checked again.
  const cacheKey = `${tokenIssuer(env)} ${tokenAudience(env)} ${token}`;
  const known = verified.get(cacheKey);
  if (known) {
    if (Date.now() / 1000 < known.expiresAt + CLOCK_TOLERANCE_SECONDS) return known;
    verified.delete(cacheKey); // expired: the full check below says so
  }

  const principal = await verifyAgainst(env, keys, token);
  if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value!); // the oldest
  verified.set(cacheKey, principal);
  return principal;
}

async function verifyAgainst(env: Env, keys: SigningKeySet, token: string): Promise<ClientPrincipal> {
  let header: { alg?: string; kid?: string };
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new ApiError("TOKEN_MALFORMED");
  }
  // The algorithm is pinned per key: a token must name the algorithm of the key its kid designates.
  const algorithmNotAllowed = () => new ApiError("TOKEN_ALGORITHM_NOT_ALLOWED", `Tokens must be signed with ${keys.algorithms.join(" or ")}.`);
  if (!SIGNING_ALGORITHMS.includes(header.alg as SigningAlgorithm)) throw algorithmNotAllowed();
  const verifier = header.kid === undefined ? undefined : keys.verifiers.get(header.kid);
  if (!verifier) throw new ApiError("TOKEN_KEY_UNKNOWN");
  if (verifier.alg !== header.alg) throw algorithmNotAllowed();

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, verifier.key, {
      algorithms: [verifier.alg],
      issuer: tokenIssuer(env),
      audience: tokenAudience(env),
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ["exp", "iat", "sub", "jti"],
    }));
  } catch (error) {
    throw new ApiError(joseErrorCode(error));
  }

  const claims = parse(ClientClaims, payload);
  if (!claims.ok) throw new ApiError("TOKEN_CLAIMS_INVALID", `Invalid token claims: ${claims.error.message}`);
  const { sub, key_id, jti, iat, exp, authorization_details } = claims.value;
  if (exp - iat > MAX_TOKEN_LIFETIME_SECONDS) throw new ApiError("TOKEN_LIFETIME_TOO_LONG");

  return {
    accountId: sub,
    apiKeyId: key_id,
    tokenId: jti,
    expiresAt: exp,
    ...narrowing(authorization_details ?? []),
  };
}

/** Several details narrow together: a model must match every list, and the smallest cap of each kind wins. */
function narrowing(details: AuthorizationDetail[]): Pick<ClientPrincipal, "models" | "maxSessions" | "maxSessionSeconds"> {
  let models: string[] | null = null;
  let maxSessions: number | null = null;
  let maxSessionSeconds: number | null = null;
  for (const detail of details) {
    const match = detail.resources?.models?.match;
    if (match) models = models ? models.filter((name) => match.includes(name)) : [...match];
    const cap = detail.constraints?.max_sessions;
    if (cap !== undefined) maxSessions = Math.min(maxSessions ?? cap, cap);
    const duration = detail.constraints?.max_session_duration_seconds;
    if (duration !== undefined) maxSessionSeconds = Math.min(maxSessionSeconds ?? duration, duration);
  }
  return { models, maxSessions, maxSessionSeconds };
}

/**
 * Every error class jose can throw, with the code a client sees. jose checks some things before the signature (a
 * `crit` header it does not support, a malformed header or payload), so whatever a forged token makes it throw
 * must land here: an unmapped one would be a 500 and an "unhandled error" log line per request. Most specific
 * first (JWTExpired is a JWTClaimValidationFailed; every class is a JOSEError). Some cannot be reached with this
 * gateway's single-key, JWS-only verification (JWE and JWKS failures) and are mapped all the same, so a jose
 * upgrade that starts throwing them still answers 401; test/worker/token-attacks.test.ts checks that every class
 * jose exports is in this table.
 */
export const JOSE_ERROR_CODES: readonly [errorClass: abstract new (...args: never[]) => Error, code: ErrorCode][] = [
  [joseErrors.JWTExpired, "TOKEN_EXPIRED"],
  [joseErrors.JWTClaimValidationFailed, "TOKEN_CLAIMS_INVALID"], // refined by claim in joseErrorCode
  [joseErrors.JWSSignatureVerificationFailed, "TOKEN_SIGNATURE_INVALID"],
  [joseErrors.JOSEAlgNotAllowed, "TOKEN_ALGORITHM_NOT_ALLOWED"],
  [joseErrors.JOSENotSupported, "TOKEN_UNSUPPORTED"],
  [joseErrors.JWSInvalid, "TOKEN_MALFORMED"],
  [joseErrors.JWTInvalid, "TOKEN_MALFORMED"],
  [joseErrors.JWEInvalid, "TOKEN_MALFORMED"],
  [joseErrors.JWEDecryptionFailed, "TOKEN_MALFORMED"],
  [joseErrors.JWKSNoMatchingKey, "TOKEN_KEY_UNKNOWN"],
  [joseErrors.JWKSMultipleMatchingKeys, "TOKEN_KEY_UNKNOWN"],
  [joseErrors.JWKSInvalid, "TOKEN_KEY_UNKNOWN"],
  [joseErrors.JWKSTimeout, "TOKEN_KEY_UNKNOWN"],
  [joseErrors.JWKInvalid, "TOKEN_KEY_UNKNOWN"],
  [joseErrors.JOSEError, "TOKEN_INVALID"], // any other (future) jose failure: still a token that does not verify
];

/** The code for an error thrown while verifying a token; anything that is not jose's is a bug, and re-thrown. */
export function joseErrorCode(error: unknown): ErrorCode {
  if (error instanceof joseErrors.JWTClaimValidationFailed && !(error instanceof joseErrors.JWTExpired)) {
    switch (error.claim) {
      case "iss":
        return "TOKEN_ISSUER_INVALID";
      case "aud":
        return "TOKEN_AUDIENCE_INVALID";
      case "nbf":
        return "TOKEN_NOT_YET_VALID";
      case "iat":
        return error.reason === "check_failed" ? "TOKEN_NOT_YET_VALID" : "TOKEN_CLAIMS_INVALID";
      default:
        return "TOKEN_CLAIMS_INVALID";
    }
  }
  const entry = JOSE_ERROR_CODES.find(([errorClass]) => error instanceof errorClass);
  if (entry) return entry[1];
  throw error;
}
