import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { call, errorCode, mintToken, newApiKey } from "./helpers.ts";

describe("version headers", () => {
  it.each([
    ["current coordinator versions", { "Reactor-API-Version": "1", "Reactor-API-Accept-Version": "1" }, 200],
    ["no version headers (curl)", {}, 200],
    ["current WebRTC version", { "Reactor-WebRTC-Version": "1.0" }, 200],
    ["an old API version", { "Reactor-API-Version": "0" }, 426],
    ["an old accepted version", { "Reactor-API-Accept-Version": "0" }, 426],
    ["an old WebRTC version", { "Reactor-WebRTC-Version": "0.9" }, 426],
    ["a newer API version", { "Reactor-API-Version": "2" }, 501],
    ["a newer WebRTC version", { "Reactor-WebRTC-Version": "2.0" }, 501],
    ["a list that includes the current version", { "Reactor-API-Accept-Version": "1, 2" }, 200],
    ["a non-numeric version", { "Reactor-API-Version": "v1" }, 400],
  ])("%s → %i", async (_, headers, status) => {
    const { jwt } = await mintToken((await newApiKey()).key);
    const response = await call("/v1/whoami", { headers: { Authorization: `Bearer ${jwt}`, ...headers } });
    expect(response.status).toBe(status);
  });

  it("names the versions in the message", async () => {
    const response = await call("/health", { headers: { "Reactor-API-Version": "7" } });
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("SERVER_VERSION_TOO_OLD");
    expect(body.error.message).toContain("7");
    expect(body.error.message).toContain("speaks 1");
  });
});

describe("CORS", () => {
  const preflight = (origin: string) =>
    new Request("https://gateway.test/sessions", {
      method: "OPTIONS",
      headers: {
        Origin: origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, reactor-api-accept-version, reactor-api-version",
      },
    });

  it("answers the official client's preflight, cacheable for a day", async () => {
    const response = await call("/sessions", preflight("https://app.example"));
    expect(response.status).toBe(204);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
    const allowed = response.headers.get("Access-Control-Allow-Headers")!.toLowerCase();
    for (const header of ["authorization", "content-type", "reactor-api-version", "reactor-api-accept-version", "reactor-webrtc-version"]) {
      expect(allowed).toContain(header);
    }
    expect(allowed).not.toContain("reactor-api-key");
    expect(response.headers.get("Access-Control-Max-Age")).toBe("86400");
  });

  it("allows only the configured origins in production configuration", async () => {
    const production = { ...env, CORS_ALLOWED_ORIGINS: "https://app.example, https://admin.example" };
    const app = createApp();
    const allowed = await app.request(preflight("https://admin.example"), undefined, production);
    expect(allowed.headers.get("Access-Control-Allow-Origin")).toBe("https://admin.example");
    const refused = await app.request(preflight("https://evil.example"), undefined, production);
    expect(refused.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});

describe("meta", () => {
  it("GET /health", async () => {
    const response = await call("/health");
    expect(await response.json()).toMatchObject({ status: "ok" });
  });

  it("serves an OpenAPI 3.1 document generated from the routes", async () => {
    const document = (await (await call("/openapi.json")).json()) as {
      openapi: string;
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
    };
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(["/tokens", "/health", "/admin/keys/{keyId}"]));
    const tokenBody = document.paths["/tokens"]!.post!.requestBody!.content["application/json"]!.schema;
    expect(tokenBody).toMatchObject({ type: "object", properties: { expires_after: { type: "integer", minimum: 1 } } });
  });

  it("answers unknown routes with the error shape", async () => {
    const response = await call("/nope");
    expect(response.status).toBe(404);
    expect(await errorCode(response)).toBe("NOT_FOUND");
  });

  it.each([
    ["DELETE", "/tokens", "POST, OPTIONS"],
    ["GET", "/sessions", "POST, OPTIONS"],
    ["PATCH", "/sessions/ses_0123456789abcdefghijkl", "GET, HEAD, PUT, DELETE, OPTIONS"],
    ["POST", "/v1/models", "GET, HEAD, OPTIONS"],
    ["PUT", "/sessions/ses_0123456789abcdefghijkl/transport/webrtc/ice_servers", "GET, HEAD, OPTIONS"],
  ])("answers %s %s (a known path, another method) 405 METHOD_NOT_ALLOWED with Allow: %s", async (method, path, allow) => {
    const response = await call(path, { method, headers: { Origin: "https://app.example" } });
    expect(response.status).toBe(405);
    expect(response.headers.get("Allow")).toBe(allow);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example"); // readable by the page
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error).toMatchObject({ code: "METHOD_NOT_ALLOWED", message: `${method} is not allowed on ${path}; use ${allow}.` });
  });

  it("still answers CORS preflights on those paths, and 404 where no route has the path at all", async () => {
    const preflight = await call("/tokens", {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Methods")).toContain("POST");
    for (const path of ["/tokens/extra", "/sessions/ses_0123456789abcdefghijkl/nope", "/v1"]) {
      const response = await call(path, { method: "DELETE" });
      expect(response.status, path).toBe(404);
      expect(response.headers.get("Allow"), path).toBeNull();
    }
  });

  it("refuses oversized JSON bodies before parsing them", async () => {
    const key = await newApiKey();
    const response = await call("/tokens", {
      method: "POST",
      headers: { "Reactor-API-Key": key.key },
      body: JSON.stringify({ padding: "x".repeat(300 * 1024) }),
    });
    expect(response.status).toBe(413);
    expect(await errorCode(response)).toBe("PAYLOAD_TOO_LARGE");
  });
});

describe("admin API", () => {
  const admin = { Authorization: "Bearer test-admin-token", "Content-Type": "application/json" };

  it("creates a key shown once, lists it without the secret, and revokes it", async () => {
    const created = await call("/admin/keys", { method: "POST", headers: admin, body: JSON.stringify({ account: "acme", name: "ci" }) });
    expect(created.status).toBe(201);
    const key = (await created.json()) as { id: string; key: string };
    expect(key.key).toMatch(/^rk_[A-Za-z0-9_-]{43}$/);
    await mintToken(key.key);

    const listed = (await (await call("/admin/keys?account=acme", { headers: admin })).json()) as { keys: object[] };
    expect(listed.keys).toEqual([expect.objectContaining({ id: key.id, name: "ci", revoked_at: null })]);
    expect(JSON.stringify(listed)).not.toContain(key.key);

    const revoked = await call(`/admin/keys/${key.id}`, { method: "DELETE", headers: admin });
    expect(revoked.status).toBe(200);
    const refused = await call("/tokens", { method: "POST", headers: { "Reactor-API-Key": key.key } });
    expect(await errorCode(refused)).toBe("API_KEY_INVALID");
    expect((await call(`/admin/keys/${key.id}`, { method: "DELETE", headers: admin })).status).toBe(404);
  });

  it.each([
    ["no token", {}],
    ["a wrong token", { Authorization: "Bearer test-admin-tokeN" }],
    ["a prefix of the token", { Authorization: "Bearer test-admin" }],
  ])("refuses %s", async (_, headers) => {
    const response = await call("/admin/keys", { headers });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe("ADMIN_UNAUTHORIZED");
  });

  it("is disabled when ADMIN_TOKEN is not set", async () => {
    const response = await createApp().request("/admin/keys", { headers: admin }, { ...env, ADMIN_TOKEN: undefined });
    expect(response.status).toBe(403);
    expect(await errorCode(response)).toBe("ADMIN_DISABLED");
  });

  it("validates the account name", async () => {
    const response = await call("/admin/keys", { method: "POST", headers: admin, body: JSON.stringify({ account: "../etc" }) });
    expect(response.status).toBe(400);
  });
});
