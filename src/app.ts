/** The Hono application: cross-cutting middleware, then each group of routes. */
import { Hono } from "hono";
import { ApiError } from "./errors.ts";
import { corsPolicy } from "./http/middleware/cors.ts";
import { negotiateVersions } from "./http/middleware/versions.ts";
import { unrouted, type AppEnv } from "./http/route.ts";
import { adminRoutes } from "./routes/admin.ts";
import { devRoutes } from "./routes/dev.ts";
import { limitRoutes } from "./routes/limits.ts";
import { metaRoutes } from "./routes/meta.ts";
import { modelRoutes } from "./routes/models.ts";
import { sessionRoutes } from "./routes/sessions.ts";
import { socketRoutes } from "./routes/sockets.ts";
import { tokenRoutes } from "./routes/tokens.ts";
import { turnRoutes } from "./routes/turn.ts";
import { uploadRoutes } from "./routes/uploads.ts";
import { usageRoutes } from "./routes/usage.ts";

export function createApp(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.use(corsPolicy);
  app.use(negotiateVersions);

  metaRoutes(app);
  tokenRoutes(app);
  adminRoutes(app);
  modelRoutes(app);
  turnRoutes(app);
  sessionRoutes(app);
  uploadRoutes(app);
  usageRoutes(app);
  limitRoutes(app);
  socketRoutes(app);
  devRoutes(app);

  app.notFound((c) => unrouted(app, c.req.raw));
  app.onError((error) => {
    if (error instanceof ApiError) return error.toResponse();
    // Never log request headers here: they carry tokens and keys.
    console.error("unhandled error", error instanceof Error ? error.stack : String(error));
    return new ApiError("INTERNAL").toResponse();
  });
  return app;
}
