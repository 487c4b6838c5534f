import type { Hono } from "hono";
import type { ApiKeyRecord } from "../../protocol/api-keys.ts";
import { MAX_TOKEN_LIFETIME_SECONDS, TokenRequest, TokenResponse, WhoAmIResponse } from "../../protocol/http.ts";
import { mintClientToken } from "../auth/tokens.ts";
import { route, type AppContext, type AppEnv } from "../http/route.ts";
import { checkMintRate } from "../limits/enforce.ts";

/** The answer of POST /tokens for a verified API key (POST /dev/token answers the same way). */
export async function tokenResponse(c: AppContext, apiKey: ApiKeyRecord, request: TokenRequest): Promise<Response> {
  await checkMintRate(c.env, apiKey.account_id, apiKey.id);
  const token = await mintClientToken(c.env, {
    accountId: apiKey.account_id,
    apiKeyId: apiKey.id,
    lifetimeSeconds: request.expires_after,
    authorizationDetails: request.authorization_details,
  });
  return c.json(token, 200, { "Cache-Control": "no-store" });
}

export function tokenRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "post",
      path: "/tokens",
      tag: "Tokens",
      summary: `Trade an API key for a client JWT (default and maximum lifetime ${MAX_TOKEN_LIFETIME_SECONDS} s).`,
      auth: "apiKey",
      body: TokenRequest,
      bodyOptional: true,
      responses: { 200: { description: "A signed token.", schema: TokenResponse } },
      errors: ["RATE_LIMITED"], // the API key minted too many tokens in the last minute
    },
    (c, body) => tokenResponse(c, c.get("apiKey"), body),
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/whoami",
      tag: "Tokens",
      summary: "Describe the bearer token: account, API key id, expiry and narrowing. Handy to debug auth.",
      auth: "bearer",
      responses: { 200: { description: "The verified token.", schema: WhoAmIResponse } },
    },
    (c) => {
      const principal = c.get("principal");
      return c.json({
        account: principal.accountId,
        api_key_id: principal.apiKeyId,
        token_id: principal.tokenId,
        expires_at: principal.expiresAt,
        models: principal.models,
        max_sessions: principal.maxSessions,
        max_session_duration_seconds: principal.maxSessionSeconds,
      });
    },
  );
}
