/**
 * The OpenAPI document's error responses come from the code table: each route declares the codes it answers
 * (plus its auth scheme's and its body's), and the document gives each status one response listing them.
 */
import { describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode } from "../../protocol/errors.ts";
import { createApp } from "../../src/app.ts";
import { AUTH_ERRORS } from "../../src/http/middleware/authenticate.ts";
import { buildOpenApi } from "../../src/http/openapi.ts";
import { BODY_ERRORS, declaredRoutes, routeErrors, type RouteSpec } from "../../src/http/route.ts";
import { bearer, call, errorCode } from "./helpers.ts";

interface ErrorResponseDoc {
  description: string;
  content?: { "application/json": { schema: { $ref?: string; properties?: { error: { properties: { code: { enum: string[] } } } } } } };
}
interface Document {
  components: { schemas: Record<string, unknown> };
  paths: Record<string, Record<string, { responses: Record<string, ErrorResponseDoc> }>>;
}

const routes = declaredRoutes(createApp());
const document = buildOpenApi(routes) as unknown as Document;
const operation = (spec: RouteSpec<unknown>) => document.paths[spec.path.replace(/:(\w+)/g, "{$1}")]![spec.method]!;
const find = (method: string, path: string) => routes.find((spec) => spec.method === method && spec.path === path)!;

/** The document's error responses of one operation, as status → the codes its schema allows. */
function documentedCodes(responses: Record<string, ErrorResponseDoc>): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(responses)
      .filter(([status]) => Number(status) >= 400)
      .map(([status, response]) => [status, response.content!["application/json"].schema.properties!.error.properties.code.enum]),
  );
}

/** What the declaration says the document must show: its codes grouped by the table's status, in declaration order. */
function expectedCodes(codes: readonly ErrorCode[]): Record<string, string[]> {
  const byStatus: Record<string, string[]> = {};
  for (const code of codes) {
    const status = String(ERROR_CODES[code].status);
    byStatus[status] ??= [];
    byStatus[status].push(code);
  }
  return byStatus;
}

describe("OpenAPI error responses from the code table", () => {
  it("every code a route declares, an auth scheme answers or a body answers is in the table", () => {
    const declared = [...routes.flatMap((spec) => spec.errors ?? []), ...Object.values(AUTH_ERRORS).flat(), ...BODY_ERRORS];
    expect(declared.length).toBeGreaterThan(50);
    expect(declared.filter((code) => !(code in ERROR_CODES))).toEqual([]);
  });

  it("POST /sessions: one response per status, merging the codes of that status with their table messages", () => {
    const spec = find("post", "/sessions");
    const { responses } = operation(spec);
    expect(Object.keys(responses).sort()).toEqual(["200", "400", "401", "403", "404", "413", "429"]);
    const codes = documentedCodes(responses);
    expect(codes["404"]).toEqual(["MODEL_NOT_FOUND"]);
    expect(codes["403"]).toEqual(["MODEL_NOT_ALLOWED", "TOKEN_SESSION_LIMIT"]);
    expect(codes["429"]).toEqual(["CONCURRENCY_LIMIT", "RATE_LIMITED"]);
    expect(codes["413"]).toEqual(["PAYLOAD_TOO_LARGE", "EXTRA_ARGS_TOO_LARGE"]); // the body's and the route's own
    expect(codes["401"]).toEqual([...AUTH_ERRORS.bearer]); // from the bearer scheme, declared once
    expect(codes["400"]).toEqual(["INVALID_JSON", "INVALID_REQUEST", "UNKNOWN_FIELD", "FORBIDDEN_KEY"]);
    expect(responses["429"]!.description).toBe(
      `CONCURRENCY_LIMIT: ${ERROR_CODES.CONCURRENCY_LIMIT.message}\nRATE_LIMITED: ${ERROR_CODES.RATE_LIMITED.message}`,
    );
    expect(responses["429"]!.content!["application/json"].schema.$ref).toBe("#/components/schemas/Error");
    expect(responses["200"]!.description).toBe("The session.");
  });

  it("every documented operation's error responses are exactly its declared codes, and its success answers stay", () => {
    for (const spec of routes.filter((route) => !route.internal)) {
      const { responses } = operation(spec);
      expect(documentedCodes(responses), `${spec.method} ${spec.path}`).toEqual(expectedCodes(routeErrors(spec)));
      for (const status of Object.keys(spec.responses)) expect(responses[status], `${spec.method} ${spec.path} ${status}`).toBeDefined();
    }
  });

  it("a route without a body or an auth scheme lists only its own codes; one without any lists none", () => {
    expect(documentedCodes(operation(find("get", "/health")).responses)).toEqual({});
    expect(routeErrors(find("get", "/sessions/:id"))).toEqual([...AUTH_ERRORS.bearer, "SESSION_NOT_FOUND"]);
    expect(routeErrors(find("put", "/uploads/:upload_id"))).toEqual(find("put", "/uploads/:upload_id").errors);
  });

  it("every $ref in the document resolves to a component", () => {
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"#\/components\/schemas\/(\w+)"/g)].map(([, name]) => name!);
    expect(refs.length).toBeGreaterThan(0);
    for (const name of new Set(refs)) expect(document.components.schemas[name], name).toBeDefined();
  });

  it.each([
    ["post", "/sessions", "/sessions", {}],
    ["get", "/sessions/:id", "/sessions/ses_0123456789abcdefghijkl", bearer("eyJhbGciOiJFUzI1NiJ9.e30.sig")],
    ["post", "/tokens", "/tokens", { "Reactor-API-Key": "not-a-key" }],
    ["get", "/v1/runtime/connect", "/v1/runtime/connect", {}],
  ])("what %s %s answers is in its documented responses", async (method, path, url, headers) => {
    const response = await call(url, { method: method.toUpperCase(), headers });
    const code = await errorCode(response);
    expect(code).toBeDefined();
    expect(documentedCodes(operation(find(method, path)).responses)[String(response.status)]).toContain(code);
  });

  it("is what /openapi.json serves", async () => {
    expect(await (await call("/openapi.json")).json()).toEqual(JSON.parse(JSON.stringify(document)));
  });
});
