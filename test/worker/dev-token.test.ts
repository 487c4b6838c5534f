/**
 * POST /dev/token: the demo page's token, minted with DEV_API_KEY, only on a local development gateway. The
 * worker project's own bindings are a deployed gateway's (no DEV_API_KEY); the development cases run the app with
 * DEV_API_KEY added to those bindings.
 */
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureApiKey, findActiveApiKey } from "../../lib/api-keys.ts";
import { createApp } from "../../src/app.ts";
import { bearer, call, errorCode } from "./helpers.ts";

const DEV_KEY = `rk_devtoken_test_${"k".repeat(40)}`;
const LOCAL = "http://127.0.0.1:8787";
const app = createApp();
const devEnv = { ...env, DEV_API_KEY: DEV_KEY };

interface Post {
  env?: Env;
  headers?: Record<string, string>;
  body?: unknown;
}

function post(url: string, { env: bindings = devEnv, headers = {}, body }: Post = {}): Promise<Response> {
  const init = {
    method: "POST",
    headers: { ...(body !== undefined && { "Content-Type": "application/json" }), ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  };
  return Promise.resolve(app.request(url, init, bindings));
}

async function whoami(jwt: string) {
  const response = await call("/v1/whoami", { headers: bearer(jwt) }); // the gateway as deployed: the token must work there
  expect(response.status).toBe(200);
  return (await response.json()) as { account: string; api_key_id: string; expires_at: number; models: string[] | null };
}

/** Everything a caller can observe of a response. */
async function observable(response: Response) {
  return { status: response.status, headers: [...response.headers], body: await response.text() };
}

beforeAll(async () => {
  await ensureApiKey(env.DB, "dev", DEV_KEY, "dev");
});

describe("POST /dev/token on a local development gateway", () => {
  it.each([LOCAL, "http://localhost:8787", "http://[::1]:8787", "http://127.0.0.1"])(
    "at %s: mints a token for account dev that the gateway accepts",
    async (origin) => {
      const response = await post(`${origin}/dev/token`);
      expect(response.status).toBe(200);
      expect(response.headers.get("Cache-Control")).toBe("no-store");
      const { jwt, expires_at } = (await response.json()) as { jwt: string; expires_at: number };
      const devKey = await findActiveApiKey(env.DB, DEV_KEY);
      expect(await whoami(jwt)).toMatchObject({ account: "dev", api_key_id: devKey!.id, expires_at, models: null });
    },
  );

  it("answers the demo page, served from a loopback origin", async () => {
    const response = await post(`${LOCAL}/dev/token`, { headers: { Origin: "http://localhost:8787" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe("http://localhost:8787");
  });

  it("takes the body of POST /tokens: lifetime and narrowing", async () => {
    const response = await post(`${LOCAL}/dev/token`, {
      body: { expires_after: 120, authorization_details: [{ type: "session", resources: { models: { match: ["demo"] } } }] },
    });
    expect(response.status).toBe(200);
    const { jwt } = (await response.json()) as { jwt: string };
    const principal = await whoami(jwt);
    expect(principal.models).toEqual(["demo"]);
    expect(principal.expires_at - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(120);
  });

  it("validates that body like POST /tokens", async () => {
    const response = await post(`${LOCAL}/dev/token`, { body: { expires_after: -1 } });
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe("INVALID_REQUEST");
    const unknown = await post(`${LOCAL}/dev/token`, { body: { models: ["demo"], max_sessions: 1 } });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()) as unknown).toMatchObject({
      error: { code: "UNKNOWN_FIELD", message: expect.stringMatching(/"models", "max_sessions".*authorization_details/) },
    });
  });

  it("refuses with API_KEY_INVALID when DEV_API_KEY is not an active key of this gateway", async () => {
    const response = await post(`${LOCAL}/dev/token`, { env: { ...env, DEV_API_KEY: `rk_never_seeded_${"x".repeat(40)}` } });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe("API_KEY_INVALID");
  });

  it("is not in the OpenAPI document", async () => {
    const document = (await (await app.request(`${LOCAL}/openapi.json`, {}, devEnv)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(document.paths)).toContain("/v1/models");
    expect(Object.keys(document.paths).filter((path) => path.startsWith("/dev"))).toEqual([]);
  });
});

describe("POST /dev/token anywhere else is a route that does not exist", () => {
  /** The same request to a path no route serves: what "no such route" looks like for it. */
  const noRoute = (url: string, options: Post = {}) => post(url.replace("/dev/token", "/no/such/route"), options);

  it("without DEV_API_KEY (a deployed gateway), even on a loopback host", async () => {
    const request = () => new Request(`${LOCAL}/dev/token`, { method: "POST" });
    const response = await exports.default.fetch(request());
    expect(response.status).toBe(404);
    expect(await errorCode(response.clone())).toBe("NOT_FOUND");
    const missing = await exports.default.fetch(new Request(`${LOCAL}/no/such/route`, { method: "POST" }));
    expect(await observable(response)).toEqual(await observable(missing));
  });

  it.each([
    ["a public host", "https://gateway.example/dev/token", {}],
    ["a host that only starts like a loopback name", "http://localhost.attacker.example/dev/token", {}],
    ["another loopback address than the three local names", "http://127.0.0.2:8787/dev/token", {}],
    ["a page on a foreign origin (a web site calling the local gateway)", `${LOCAL}/dev/token`, { headers: { Origin: "https://attacker.example" } }],
    ["an opaque origin (sandboxed frame, file://)", `${LOCAL}/dev/token`, { headers: { Origin: "null" } }],
    ["an invalid body on a public host (not 400: nothing is parsed)", "https://gateway.example/dev/token", { body: "{not json" }],
  ] satisfies [string, string, Post][])("with DEV_API_KEY set, from %s", async (_, url, options) => {
    const response = await post(url, options);
    expect(response.status).toBe(404);
    expect(await errorCode(response.clone())).toBe("NOT_FOUND");
    expect(await observable(response)).toEqual(await observable(await noRoute(url, options)));
  });

  it("other methods and /dev/ paths answer the same 404", async () => {
    for (const [method, url] of [
      ["GET", `${LOCAL}/dev/token`],
      ["POST", `${LOCAL}/dev/other`],
    ] as const) {
      const response = await app.request(url, { method }, env); // no DEV_API_KEY: the route does not exist
      expect(response.status).toBe(404);
      expect(await errorCode(response)).toBe("NOT_FOUND");
    }
  });

  it("where the route exists, another method is 405 METHOD_NOT_ALLOWED, and other /dev/ paths 404", async () => {
    const wrongMethod = await app.request(`${LOCAL}/dev/token`, { method: "GET" }, devEnv);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("Allow")).toBe("POST, OPTIONS");
    expect(await errorCode(wrongMethod)).toBe("METHOD_NOT_ALLOWED");
    expect(await errorCode(await app.request(`${LOCAL}/dev/other`, { method: "POST" }, devEnv))).toBe("NOT_FOUND");
  });
});
