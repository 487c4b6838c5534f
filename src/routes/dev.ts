/**
 * Local development only. POST /dev/token gives the demo page that `npm start` serves a client token without the
 * page ever holding an API key: it mints with the DEV_API_KEY secret exactly as POST /tokens would with that key.
 *
 * The route exists only when DEV_API_KEY is set AND the request is addressed to a loopback host AND it comes from
 * no page or a page on a loopback origin (so a web site open in the developer's browser cannot mint tokens from
 * their running gateway). Anywhere else every /dev/ path is the same 404 as a route that does not exist, and the
 * route is left out of the OpenAPI document.
 */
import type { Hono } from "hono";
import { findActiveApiKey } from "../../lib/api-keys.ts";
import { TokenRequest, TokenResponse } from "../../protocol/http.ts";
import { ApiError } from "../errors.ts";
import { noSuchRoute, route, type AppContext, type AppEnv } from "../http/route.ts";
import { tokenResponse } from "./tokens.ts";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

function isLoopbackUrl(url: string): boolean {
  return URL.canParse(url) && LOOPBACK_HOSTS.has(new URL(url).hostname);
}

/** Whether the development routes exist for this request. */
export function devRoutesEnabled(c: AppContext): boolean {
  const origin = c.req.header("Origin");
  return Boolean(c.env.DEV_API_KEY) && isLoopbackUrl(c.req.url) && (origin === undefined || isLoopbackUrl(origin));
}

export function devRoutes(app: Hono<AppEnv>): void {
  // Before the routes' own body parsing and errors, so a disabled route answers nothing but the 404.
  app.use("/dev/*", async (c, next) => {
    if (!devRoutesEnabled(c)) throw noSuchRoute();
    await next();
  });

  route(
    app,
    {
      method: "post",
      path: "/dev/token",
      tag: "Development",
      summary: "Local development only: a client token for account dev, minted with the DEV_API_KEY secret.",
      auth: "none",
      internal: true,
      body: TokenRequest,
      bodyOptional: true,
      responses: { 200: { description: "A signed token, as POST /tokens answers.", schema: TokenResponse } },
      // API_KEY_INVALID: DEV_API_KEY is not an active key here; NOT_FOUND: not a local development gateway.
      errors: ["API_KEY_INVALID", "NOT_FOUND", "RATE_LIMITED"],
    },
    async (c, body) => {
      const apiKey = await findActiveApiKey(c.env.DB, c.env.DEV_API_KEY!);
      if (!apiKey) throw new ApiError("API_KEY_INVALID", "DEV_API_KEY is not an active API key of this gateway; `npm start` seeds it.");
      return tokenResponse(c, apiKey, body);
    },
  );
}
