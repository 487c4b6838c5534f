/**
 * A bench-only Worker (see bench/suites/upload.ts): the gateway itself, and `PUT /direct/<key>`, which puts the
 * request body straight into the same R2 binding — no URL to verify, no session object, no byte counting. The same
 * HTTP path into the same workerd, so the two differ only by what the gateway's upload route does. Never deployed.
 *
 * Worker code built from the gateway's own sources, so it imports src/ (only the Worker, its Durable Objects, these
 * bench Workers and test/worker may).
 */
import { createApp } from "../../../src/app.ts";

export { AccountLimits, ModelPool, SessionRelay } from "../../../worker.ts";

const app = createApp();
const DIRECT = "/direct/";

async function direct(request: Request, env: Env, key: string): Promise<Response> {
  if (request.method === "DELETE") {
    await env.UPLOADS.delete(key);
    return new Response(null, { status: 204 });
  }
  if (request.method !== "PUT") return new Response("PUT or DELETE", { status: 405 });
  const stored = await env.UPLOADS.put(key, request.body, { httpMetadata: { contentType: request.headers.get("Content-Type") ?? undefined } });
  return Response.json({ key, size: stored?.size });
}

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext) {
    const url = new URL(request.url);
    if (!url.pathname.startsWith(DIRECT)) return app.fetch(request, env, ctx);
    return direct(request, env, `direct/${url.pathname.slice(DIRECT.length)}`);
  },
} satisfies ExportedHandler<Env>;
