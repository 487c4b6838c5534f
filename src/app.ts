/** The Hono application: cross-cutting middleware, then each group of routes. */
import { Hono } from "hono";
import { ApiError } from "./errors.ts";
import { corsPolicy } from "./http/middleware/cors.ts";
import { negotiateVersions } from "./http/middleware/versions.ts";
import type { AppEnv } from "./http/route.ts";
import { adminRoutes } from "./routes/admin.ts";
import { metaRoutes } from "./routes/meta.ts";
import { sessionRoutes } from "./routes/sessions.ts";
import { socketRoutes } from "./routes/sockets.ts";
import { tokenRoutes } from "./routes/tokens.ts";

export function createApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(corsPolicy);
  app.use(negotiateVersions);

  metaRoutes(app);
  tokenRoutes(app);
  adminRoutes(app);
  sessionRoutes(app);
  socketRoutes(app);

  app.notFound(() => new ApiError("NOT_FOUND", "No such route.").toResponse());
  app.onError((error) => {
    if (error instanceof ApiError) return error.toResponse();
    // Never log request headers here: they carry tokens and keys.
    console.error("unhandled error", error instanceof Error ? error.stack : String(error));
    return new ApiError("INTERNAL").toResponse();
  });
  return app;
}
