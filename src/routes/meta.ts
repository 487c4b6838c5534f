import type { Hono } from "hono";
import { HealthResponse, JwksResponse } from "../../protocol/http.ts";
import { signingKeys } from "../auth/signing-keys.ts";
import { GATEWAY_VERSION } from "../config.ts";
import { buildOpenApi } from "../http/openapi.ts";
import { declaredRoutes, route, type AppEnv } from "../http/route.ts";

export function metaRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "get",
      path: "/health",
      tag: "Meta",
      summary: "Liveness.",
      auth: "none",
      responses: { 200: { description: "The gateway is up.", schema: HealthResponse } },
    },
    (c) => c.json({ status: "ok", version: GATEWAY_VERSION }),
  );

  route(
    app,
    {
      method: "get",
      path: "/.well-known/jwks.json",
      tag: "Meta",
      summary: "Public keys that verify client tokens (for services that verify tokens themselves).",
      auth: "none",
      responses: { 200: { description: "JWK set.", schema: JwksResponse } },
    },
    async (c) => {
      const { publicJwks } = await signingKeys(c.env);
      return c.json({ keys: publicJwks }, 200, { "Cache-Control": "public, max-age=300" });
    },
  );

  let document: unknown;
  route(
    app,
    {
      method: "get",
      path: "/openapi.json",
      tag: "Meta",
      summary: "This document.",
      auth: "none",
      responses: { 200: { description: "OpenAPI 3.1." } },
    },
    (c) => {
      document ??= buildOpenApi(declaredRoutes(app));
      return c.json(document);
    },
  );
}
