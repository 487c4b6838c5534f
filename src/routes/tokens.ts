import type { Hono } from "hono";
import { mintClientToken } from "../auth/tokens.ts";
import { route, type AppEnv } from "../http/route.ts";
import { ErrorResponse, MAX_TOKEN_LIFETIME_SECONDS, TokenRequest, TokenResponse, WhoAmIResponse } from "../protocol/http.ts";

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
      responses: {
        200: { description: "A signed token.", schema: TokenResponse },
        400: { description: "Malformed body.", schema: ErrorResponse },
        401: { description: "Missing, unknown or revoked API key.", schema: ErrorResponse },
      },
    },
    async (c, body) => {
      const apiKey = c.get("apiKey");
      const token = await mintClientToken(c.env, {
        accountId: apiKey.account_id,
        apiKeyId: apiKey.id,
        lifetimeSeconds: body.expires_after,
        authorizationDetails: body.authorization_details,
      });
      return c.json(token, 200, { "Cache-Control": "no-store" });
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/whoami",
      tag: "Tokens",
      summary: "Describe the bearer token: account, API key id, expiry and narrowing. Handy to debug auth.",
      auth: "bearer",
      responses: {
        200: { description: "The verified token.", schema: WhoAmIResponse },
        401: { description: "The token was refused; the code says why.", schema: ErrorResponse },
      },
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
      });
    },
  );
}
