import type { Hono } from "hono";
import { createApiKey, listApiKeys, revokeApiKey } from "../../lib/api-keys.ts";
import { ApiKeyList, CreateApiKeyRequest, CreatedApiKeyResponse } from "../../protocol/http.ts";
import { ApiError } from "../errors.ts";
import { route, type AppEnv } from "../http/route.ts";

/** Key management for operators (`npm run keys -- --url …`), guarded by the ADMIN_TOKEN secret. */
export function adminRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "post",
      path: "/admin/keys",
      tag: "Admin",
      summary: "Create an API key for an account (created on first use). The full key is in this response only.",
      auth: "admin",
      body: CreateApiKeyRequest,
      responses: { 201: { description: "The new key.", schema: CreatedApiKeyResponse } },
    },
    async (c, body) => {
      const created = await createApiKey(c.env.DB, { accountId: body.account, name: body.name });
      return c.json(created, 201, { "Cache-Control": "no-store" });
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/admin/keys",
      tag: "Admin",
      summary: "List API keys (never the keys themselves), optionally of one account (?account=).",
      auth: "admin",
      responses: { 200: { description: "Keys.", schema: ApiKeyList } },
    },
    async (c) => c.json({ keys: await listApiKeys(c.env.DB, c.req.query("account") || undefined) }),
  );

  route(
    app,
    {
      method: "delete",
      path: "/admin/keys/:keyId",
      tag: "Admin",
      summary: "Revoke an API key. It stops working at once.",
      auth: "admin",
      responses: { 200: { description: "The revoked key." } },
      errors: ["NOT_FOUND"],
    },
    async (c) => {
      const revoked = await revokeApiKey(c.env.DB, c.req.param("keyId") ?? "");
      if (!revoked) throw new ApiError("NOT_FOUND", "No active API key has that id.");
      return c.json(revoked);
    },
  );
}
