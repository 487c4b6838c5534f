/** Builds the OpenAPI 3.1 document from the routes declared with `route()`. */
import { ERROR_CODES, type ErrorCode } from "../../protocol/errors.ts";
import { ErrorResponse } from "../../protocol/http.ts";
import type { JsonSchema, Schema } from "../../protocol/schema.ts";
import { GATEWAY_VERSION } from "../config.ts";
import { routeErrors, type AuthScheme, type RouteSpec } from "./route.ts";

const SECURITY: Record<AuthScheme, Record<string, string[]>[]> = {
  none: [],
  apiKey: [{ apiKey: [] }],
  bearer: [{ bearer: [] }],
  admin: [{ admin: [] }],
  runtime: [{ runtime: [] }],
};

const isSchema = (value: unknown): value is Schema<unknown> => typeof value === "object" && value !== null && "check" in value && "json" in value;

const jsonOf = (schema: Schema<unknown> | JsonSchema): JsonSchema => (isSchema(schema) ? schema.json : schema);

const ERROR_SCHEMA_REF = "#/components/schemas/Error";

/**
 * The error responses for `codes`, one per status (from the code table): its description lists each code with the
 * table's message, and its schema is the shared error shape with `error.code` narrowed to those codes.
 */
export function errorResponses(codes: readonly ErrorCode[]): Record<string, JsonSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const { status } = ERROR_CODES[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus.entries()]
      .sort(([a], [b]) => a - b)
      .map(([status, sameStatus]) => [
        String(status),
        {
          description: sameStatus.map((code) => `${code}: ${ERROR_CODES[code].message}`).join("\n"),
          content: {
            "application/json": {
              schema: { $ref: ERROR_SCHEMA_REF, properties: { error: { properties: { code: { enum: sameStatus } } } } },
            },
          },
        },
      ]),
  );
}

export function buildOpenApi(routes: readonly RouteSpec<unknown>[]): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of routes) {
    if (spec.internal) continue;
    const path = spec.path.replace(/:(\w+)/g, "{$1}");
    const pathParameters = [...spec.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
      name,
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    paths[path] ??= {};
    paths[path][spec.method] = {
      summary: spec.summary,
      tags: [spec.tag],
      security: SECURITY[spec.auth],
      parameters: [...pathParameters, ...(spec.parameters ?? [])],
      ...(spec.body && {
        requestBody: {
          required: !spec.bodyOptional,
          content: { "application/json": { schema: spec.body.json } },
        },
      }),
      responses: {
        ...Object.fromEntries(
          Object.entries(spec.responses).map(([status, { description, schema }]) => [
            status,
            { description, ...(schema && { content: { "application/json": { schema: jsonOf(schema) } } }) },
          ]),
        ),
        ...errorResponses(routeErrors(spec)),
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Reactor edge gateway",
      version: GATEWAY_VERSION,
      description:
        "Tokens, sessions and signaling between browsers and GPU model servers. Errors share one shape: " +
        '{ "error": { "code", "message", "recoverable", "retry_after"? } }.',
    },
    components: {
      schemas: { Error: ErrorResponse.json },
      securitySchemes: {
        apiKey: { type: "apiKey", in: "header", name: "Reactor-API-Key", description: "Server side only." },
        bearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "From POST /tokens. WebSockets may send it as the subprotocol 'bearer.<jwt>' instead.",
        },
        admin: { type: "http", scheme: "bearer", description: "The ADMIN_TOKEN secret." },
        runtime: { type: "http", scheme: "bearer", description: "A GPU runtime credential (RUNTIME_TOKENS)." },
      },
    },
    paths,
  };
}
