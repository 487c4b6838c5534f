/**
 * Routes are declared once, with their schemas: `route()` registers the Hono handler (authentication, body
 * validation) and records the same declaration for the OpenAPI document. Handlers receive their validated body.
 * Routes name the error codes they answer, never their statuses or texts: the document takes those from the code
 * table (protocol/errors.ts), so it cannot drift from what the gateway sends.
 */
import type { Hono } from "hono";
import { ApiError } from "../errors.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import { schemaErrorCode } from "../../protocol/frames.ts";
import { parse, type JsonSchema, type Schema, type SchemaError } from "../../protocol/schema.ts";
import { readJson } from "./body.ts";
import { AUTH_ERRORS, authenticators } from "./middleware/authenticate.ts";

import type { AppContext, AppEnv, AuthScheme, Method } from "./context.ts";

export type { AppContext, AppEnv, AuthScheme, Method } from "./context.ts";

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
  /** The successful answers. Error answers are derived from `errors`, `auth` and `body` (see routeErrors). */
  responses: Record<number, { description: string; schema?: Schema<unknown> | JsonSchema }>;
  /**
   * The error codes the route itself may answer: its handler's and those of the objects it calls. Authentication's
   * codes come from `auth` (AUTH_ERRORS), a body's from `body` (BODY_ERRORS); they need not be repeated here.
   */
  errors?: readonly ErrorCode[];
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
export function unrouted(app: Hono<AppEnv>, request: Request): Response {
  const path = new URL(request.url).pathname;
  const methods = new Set(
    declaredRoutes(app)
      .filter((spec) => routePattern(spec.path).test(path))
      .map((spec) => spec.method.toUpperCase()),
  );
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
    pattern = new RegExp(`^${source.join("")}$`);
    patterns.set(path, pattern);
  }
  return pattern;
}

/**
 * What reading and validating a declared body may answer (readJson; bodyErrorCode below). SDP_TOO_LARGE only
 * applies to bodies carrying SDP, so the routes taking one declare it themselves.
 */
export const BODY_ERRORS: readonly ErrorCode[] = ["INVALID_JSON", "PAYLOAD_TOO_LARGE", "INVALID_REQUEST", "UNKNOWN_FIELD", "FORBIDDEN_KEY"];

/** Every error code a route may answer: its authentication's, its body's, then its own, each once. */
export function routeErrors(spec: RouteSpec<unknown>): ErrorCode[] {
  return [...new Set([...AUTH_ERRORS[spec.auth], ...(spec.body ? BODY_ERRORS : []), ...(spec.errors ?? [])])];
}

/** A body's schema failure as the most precise code: a forbidden key, an unknown field, an oversized SDP, or a mismatch. */
function bodyErrorCode(error: SchemaError): ErrorCode {
  const code = schemaErrorCode(error);
  return code === "SDP_TOO_LARGE" || code === "FORBIDDEN_KEY" || code === "UNKNOWN_FIELD" ? code : "INVALID_REQUEST";
}

type Handler<B> = (c: AppContext, body: B) => Response | Promise<Response>;

/** Each app's declarations, in the order `route()` received them (the app's own: building another adds nothing here). */
const registries = new WeakMap<Hono<AppEnv>, RouteSpec<unknown>[]>();

/** The routes declared on `app`: for its OpenAPI document and its 404/405 answers. */
export function declaredRoutes(app: Hono<AppEnv>): readonly RouteSpec<unknown>[] {
  return registries.get(app) ?? [];
}

export function route<B = undefined>(app: Hono<AppEnv>, spec: RouteSpec<B>, handler: Handler<B>): void {
  let registry = registries.get(app);
  if (!registry) {
    registry = [];
    registries.set(app, registry);
  }
  registry.push(spec as RouteSpec<unknown>);
  const { body } = spec;
  app.on(spec.method.toUpperCase(), spec.path, authenticators[spec.auth], async (c) => {
    if (!body) return handler(c, undefined as B);
    const raw = await readJson(c.req.raw, { optional: spec.bodyOptional });
    const result = parse(body, raw ?? {});
    if (!result.ok) throw new ApiError(bodyErrorCode(result.error), result.error.message);
    return handler(c, result.value);
  });
}
