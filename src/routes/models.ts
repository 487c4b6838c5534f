import type { Hono } from "hono";
import { route, type AppEnv } from "../http/route.ts";
import { availableModels } from "../models/available.ts";
import { ErrorResponse, ModelsResponse } from "../protocol/http.ts";

export function modelRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/models",
      tag: "Models",
      summary:
        "Models that have at least one GPU runtime connected now (only those the token may use): capabilities, " +
        "runtimes, slots and queue length.",
      auth: "bearer",
      responses: {
        200: { description: "Available models, by name.", schema: ModelsResponse },
        401: { description: "Missing or invalid token.", schema: ErrorResponse },
      },
    },
    async (c) => c.json({ models: await availableModels(c.env, c.get("principal").models) }, 200, { "Cache-Control": "no-store" }),
  );
}
