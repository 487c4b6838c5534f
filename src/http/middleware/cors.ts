/**
 * CORS for browser apps served from other origins. `CORS_ALLOWED_ORIGINS` is `*` (development) or a comma-separated
 * list of origins. Preflights are cached by browsers for a day, so each call of the official client costs one round
 * trip, not two. `Reactor-API-Key` is deliberately not allowed: API keys belong on servers, never in browsers.
 *
 * With a list (production), a request that carries an `Origin` neither listed nor the gateway's own is refused
 * outright (403 ORIGIN_NOT_ALLOWED), preflight or not: CORS alone only stops the browser from reading the answer,
 * while requests that need no preflight (WebSocket upgrades among them) would still run. Requests without an
 * `Origin` (servers, runtimes, curl) are not browsers' and pass.
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { ApiError } from "../../errors.ts";
import type { AppContext, AppEnv } from "../context.ts";

const ALLOWED_HEADERS = ["Authorization", "Content-Type", "Reactor-API-Version", "Reactor-API-Accept-Version", "Reactor-WebRTC-Version"];

let parsed: { source: string; origins: Set<string> | "*" } | undefined;

function allowedOrigins(source: string): Set<string> | "*" {
  if (parsed?.source !== source) {
    const list = source
      .split(",")
      .map((origin) => origin.trim())
      .filter(Boolean);
    parsed = { source, origins: list.includes("*") ? "*" : new Set(list) };
  }
  return parsed.origins;
}

const headers = cors({
  origin: (origin: string, c: AppContext) => {
    const allowed = allowedOrigins(c.env.CORS_ALLOWED_ORIGINS ?? "");
    if (allowed === "*") return origin || "*";
    return allowed.has(origin) ? origin : null;
  },
  allowMethods: ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
  allowHeaders: ALLOWED_HEADERS,
  exposeHeaders: ["Retry-After"],
  maxAge: 86_400,
});

export const corsPolicy: MiddlewareHandler<AppEnv> = async function corsPolicy(c, next) {
  const origin = c.req.header("Origin");
  if (origin !== undefined) {
    const allowed = allowedOrigins(c.env.CORS_ALLOWED_ORIGINS ?? "");
    if (allowed !== "*" && !allowed.has(origin) && origin !== new URL(c.req.url).origin) throw new ApiError("ORIGIN_NOT_ALLOWED");
  }
  return headers(c, next);
};
