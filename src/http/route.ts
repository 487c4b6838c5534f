/**
 * Routes are declared once, with their schemas: `route()` registers the Hono handler (authentication, body
 * validation) and records the same declaration for the OpenAPI document. Handlers receive their validated body.
 */
import type { Context, Hono } from "hono";
import { ApiError, type ErrorCode } from "../errors.ts";
import type { ApiKeyRecord } from "../auth/api-keys.ts";
import type { ClientPrincipal } from "../auth/tokens.ts";
import { schemaErrorCode } from "../protocol/frames.ts";
import { parse, type JsonSchema, type Schema, type SchemaError } from "../protocol/schema.ts";
import { readJson } from "./body.ts";
import { authenticators } from "./middleware/authenticate.ts";

export type AppEnv = { Bindings: Env; Variables: { principal: ClientPrincipal; apiKey: ApiKeyRecord } };
export type AppContext = Context<AppEnv>;
export type Method = "get" | "post" | "put" | "delete";

/** How a route authenticates. Each scheme is a middleware keyed here, so the OpenAPI security follows the code. */
export type AuthScheme = "none" | "apiKey" | "bearer" | "admin" | "runtime";

export interface RouteSpec<B> {
  method: Method;
  /** Hono syntax (`/sessions/:id`); converted to `{id}` for OpenAPI. */
  path: string;
  summary: string;
  tag: string;
  auth: AuthScheme;
  /** Validated JSON body. */
  body?: Schema<B>;
  /** When true an empty body is accepted and the handler receives `{}` validated against `body`. */
  bodyOptional?: boolean;
  responses: Record<number, { description: string; schema?: Schema<unknown> | JsonSchema }>;
  /** Extra headers or parameters, for the document only. */
  parameters?: JsonSchema[];
  /** Routes that exist only in development are left out of the public document. */
  internal?: boolean;
}

/** The answer for a path no route serves (also what a disabled route answers, so the two look the same). */
export const noSuchRoute = (): ApiError => new ApiError("NOT_FOUND", "No such route.");

/**
 * The answer for a request no route served: 405 METHOD_NOT_ALLOWED with an `Allow` header when a declared route
 * serves its path with other methods (`DELETE /tokens`), else 404 NOT_FOUND. CORS preflights never get here: the
 * CORS middleware answers every OPTIONS itself.
 */
export function unrouted(request: Request): Response {
  const path = new URL(request.url).pathname;
  const methods = new Set(declaredRoutes.filter((spec) => routePattern(spec.path).test(path)).map((spec) => spec.method.toUpperCase()));
  if (methods.size === 0) return noSuchRoute().toResponse();
  if (methods.has("GET")) methods.add("HEAD"); // Hono answers HEAD with the GET route
  methods.add("OPTIONS");
  const allow = METHOD_ORDER.filter((method) => methods.has(method)).join(", ");
  return new ApiError("METHOD_NOT_ALLOWED", `${request.method} is not allowed on ${path}; use ${allow}.`).toResponse({ Allow: allow });
}

const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"];
const patterns = new Map<string, RegExp>();

/** A declared path (`/sessions/:id`) as a regular expression matching the paths it serves. */
function routePattern(path: string): RegExp {
  let pattern = patterns.get(path);
  if (!pattern) {
    const source = path.split(/(:\w+)/).map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    patterns.set(path, (pattern = new RegExp(`^${source.join("")}$`)));
  }
  return pattern;
}

/** A body's schema failure as the most precise code: a forbidden key, an unknown field, an oversized SDP, or a mismatch. */
function bodyErrorCode(error: SchemaError): ErrorCode {
  const code = schemaErrorCode(error);
  return code === "SDP_TOO_LARGE" || code === "FORBIDDEN_KEY" || code === "UNKNOWN_FIELD" ? code : "INVALID_REQUEST";
}

type Handler<B> = (c: AppContext, body: B) => Response | Promise<Response>;

export const declaredRoutes: RouteSpec<unknown>[] = [];

export function route<B = undefined>(
  app: Hono<AppEnv>,
  spec: RouteSpec<B>,
  handler: Handler<B>,
): void {
  declaredRoutes.push(spec as RouteSpec<unknown>);
  const { body } = spec;
  app.on(spec.method.toUpperCase(), spec.path, authenticators[spec.auth], async (c) => {
    if (!body) return handler(c, undefined as B);
    const raw = await readJson(c.req.raw, { optional: spec.bodyOptional });
    const result = parse(body, raw ?? {});
    if (!result.ok) throw new ApiError(bodyErrorCode(result.error), result.error.message);
    return handler(c, result.value);
  });
}
