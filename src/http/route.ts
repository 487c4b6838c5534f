/**
 * Routes are declared once, with their schemas: `route()` registers the Hono handler (authentication, body
 * validation) and records the same declaration for the OpenAPI document. Handlers receive their validated body.
 */
import type { Context, Hono } from "hono";
import { ApiError } from "../errors.ts";
import type { ApiKeyRecord } from "../auth/api-keys.ts";
import type { ClientPrincipal } from "../auth/tokens.ts";
import { schemaErrorCode } from "../protocol/frames.ts";
import { parse, type JsonSchema, type Schema } from "../protocol/schema.ts";
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
    if (!result.ok) {
      const code = schemaErrorCode(result.error) === "SDP_TOO_LARGE" ? "SDP_TOO_LARGE" : "INVALID_REQUEST";
      throw new ApiError(code, result.error.message);
    }
    return handler(c, result.value);
  });
}
