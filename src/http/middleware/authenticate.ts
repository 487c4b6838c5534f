/**
 * One middleware per authentication scheme of `RouteSpec.auth`. Each credential works in exactly one place:
 * API keys only in `Reactor-API-Key` on POST /tokens, client JWTs only on client routes, the admin token only on
 * /admin routes.
 */
import { findActiveApiKey } from "../../../lib/api-keys.ts";
import { secretsEqual } from "../../../lib/encoding.ts";
import { API_KEY_PATTERN, looksLikeApiKey } from "../../../protocol/api-keys.ts";
import { verifyClientToken } from "../../auth/tokens.ts";
import { ApiError } from "../../errors.ts";
import type { ErrorCode } from "../../../protocol/errors.ts";
import type { AppContext, AuthScheme } from "../context.ts";

type Next = () => Promise<void>;

/** Prefix of the WebSocket subprotocol that carries a token, since browsers cannot set headers on a WebSocket. */
export const BEARER_PROTOCOL_PREFIX = "bearer.";

export function bearerToken(request: Request): string | undefined {
  const authorization = request.headers.get("Authorization");
  if (authorization !== null) {
    const match = /^Bearer[ ]+(\S*)\s*$/i.exec(authorization);
    return match ? match[1] : "";
  }
  const protocols = request.headers.get("Sec-WebSocket-Protocol");
  if (protocols === null) return undefined;
  const entry = protocols
    .split(",")
    .map((protocol) => protocol.trim())
    .find((protocol) => protocol.startsWith(BEARER_PROTOCOL_PREFIX));
  return entry?.slice(BEARER_PROTOCOL_PREFIX.length);
}

const RUNTIME_TOKEN_PREFIX = "rt_";

async function clientToken(c: AppContext, next: Next): Promise<void> {
  const token = bearerToken(c.req.raw);
  if (token === undefined || token === "") {
    if (c.req.header("Reactor-API-Key") !== undefined) {
      throw new ApiError("API_KEY_SENT_AS_TOKEN", "API keys are accepted only by POST /tokens; send a JWT here.");
    }
    throw new ApiError("TOKEN_MISSING");
  }
  if (token.startsWith(RUNTIME_TOKEN_PREFIX)) throw new ApiError("RUNTIME_CREDENTIAL_NOT_ACCEPTED");
  c.set("principal", await verifyClientToken(c.env, token));
  await next();
}

/** GPU runtimes present one of the RUNTIME_TOKENS (several may be valid at once, for rotation). */
async function runtimeCredential(c: AppContext, next: Next): Promise<void> {
  const given = bearerToken(c.req.raw);
  const accepted = (c.env.RUNTIME_TOKENS ?? "")
    .split(",")
    .map((token) => token.trim())
    .filter((token) => token.startsWith(RUNTIME_TOKEN_PREFIX));
  if (!given?.startsWith(RUNTIME_TOKEN_PREFIX)) throw new ApiError("RUNTIME_CREDENTIAL_INVALID");
  let valid = false;
  for (const token of accepted) valid = (await secretsEqual(given, token)) || valid;
  if (!valid) throw new ApiError("RUNTIME_CREDENTIAL_INVALID");
  await next();
}

const JWT_LIKE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

async function apiKey(c: AppContext, next: Next): Promise<void> {
  const key = c.req.header("Reactor-API-Key")?.trim();
  if (!key) {
    const sentAsBearer = looksLikeApiKey(bearerToken(c.req.raw) ?? "");
    throw new ApiError("API_KEY_MISSING", sentAsBearer ? "Send the API key in Reactor-API-Key, not in Authorization." : undefined);
  }
  if (JWT_LIKE.test(key)) throw new ApiError("JWT_SENT_AS_API_KEY");
  if (!API_KEY_PATTERN.test(key)) throw new ApiError("API_KEY_MALFORMED");
  const record = await findActiveApiKey(c.env.DB, key);
  if (!record) throw new ApiError("API_KEY_INVALID");
  c.set("apiKey", record);
  await next();
}

async function admin(c: AppContext, next: Next): Promise<void> {
  const expected = c.env.ADMIN_TOKEN;
  if (!expected) throw new ApiError("ADMIN_DISABLED");
  const given = bearerToken(c.req.raw);
  if (!given || !(await secretsEqual(given, expected))) throw new ApiError("ADMIN_UNAUTHORIZED");
  await next();
}

async function none(_c: AppContext, next: Next): Promise<void> {
  await next();
}

export const authenticators: Record<AuthScheme, (c: AppContext, next: Next) => Promise<void>> = {
  none,
  apiKey,
  bearer: clientToken,
  admin,
  runtime: runtimeCredential,
};

/**
 * What each scheme's middleware may answer, declared once here for every route using it (the OpenAPI document
 * lists them). Keep in step with the middleware above and with verifyClientToken (src/auth/tokens.ts).
 */
export const AUTH_ERRORS: Record<AuthScheme, readonly ErrorCode[]> = {
  none: [],
  apiKey: ["API_KEY_MISSING", "JWT_SENT_AS_API_KEY", "API_KEY_MALFORMED", "API_KEY_INVALID"],
  bearer: [
    "TOKEN_MISSING",
    "API_KEY_SENT_AS_TOKEN",
    "RUNTIME_CREDENTIAL_NOT_ACCEPTED",
    "TOKEN_TOO_LARGE",
    "TOKEN_MALFORMED",
    "TOKEN_ALGORITHM_NOT_ALLOWED",
    "TOKEN_KEY_UNKNOWN",
    "TOKEN_SIGNATURE_INVALID",
    "TOKEN_EXPIRED",
    "TOKEN_NOT_YET_VALID",
    "TOKEN_ISSUER_INVALID",
    "TOKEN_AUDIENCE_INVALID",
    "TOKEN_LIFETIME_TOO_LONG",
    "TOKEN_CLAIMS_INVALID",
    "TOKEN_UNSUPPORTED",
    "TOKEN_INVALID",
  ],
  admin: ["ADMIN_UNAUTHORIZED", "ADMIN_DISABLED"],
  runtime: ["RUNTIME_CREDENTIAL_INVALID"],
};
