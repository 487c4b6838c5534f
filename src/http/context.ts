/**
 * The app's Hono types, in a module of their own so the route declarations (route.ts) and the middleware they
 * apply (middleware/*) both import them without importing each other.
 */
import type { Context } from "hono";
import type { ApiKeyRecord } from "../../protocol/api-keys.ts";
import type { ClientPrincipal } from "../auth/tokens.ts";

export type AppEnv = { Bindings: Env; Variables: { principal: ClientPrincipal; apiKey: ApiKeyRecord } };
export type AppContext = Context<AppEnv>;
export type Method = "get" | "post" | "put" | "delete";

/** How a route authenticates. Each scheme is a middleware keyed here, so the OpenAPI security follows the code. */
export type AuthScheme = "none" | "apiKey" | "bearer" | "admin" | "runtime";
