/**
 * CORS for browser apps served from other origins. `CORS_ALLOWED_ORIGINS` is `*` (development) or a comma-separated
 * list of origins. Preflights are cached by browsers for a day, so each call of the official client costs one round
 * trip, not two. `Reactor-API-Key` is deliberately not allowed: API keys belong on servers, never in browsers.
 */
import { cors } from "hono/cors";
import type { AppContext } from "../route.ts";

const ALLOWED_HEADERS = [
  "Authorization",
  "Content-Type",
  "Reactor-API-Version",
  "Reactor-API-Accept-Version",
  "Reactor-WebRTC-Version",
];

let parsed: { source: string; origins: Set<string> | "*" } | undefined;

function allowedOrigins(source: string): Set<string> | "*" {
  if (parsed?.source !== source) {
    const list = source.split(",").map((origin) => origin.trim()).filter(Boolean);
    parsed = { source, origins: list.includes("*") ? "*" : new Set(list) };
  }
  return parsed.origins;
}

export const corsPolicy = cors({
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
