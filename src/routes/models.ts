import type { Hono } from "hono";
import { ModelsResponse } from "../../protocol/http.ts";
import { route, type AppEnv } from "../http/route.ts";
import { availableModels } from "../models/available.ts";

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
      responses: { 200: { description: "Available models, by name.", schema: ModelsResponse } },
    },
    async (c) => c.json({ models: await availableModels(c.env, c.get("principal").models) }, 200, { "Cache-Control": "no-store" }),
  );
}
