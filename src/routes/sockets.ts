/**
 * WebSocket entry points. The Worker authenticates, then hands the upgrade to the Durable Object that owns the
 * socket: the session's object for the native client and for a runtime's session socket, the model's pool for a
 * runtime's control socket. Only the facts the object needs are forwarded, never the caller's credentials.
 */
import type { Hono } from "hono";
import { ApiError } from "../errors.ts";
import { route, type AppContext, type AppEnv } from "../http/route.ts";
import { modelPool } from "../objects.ts";
import { ModelName } from "../../protocol/common.ts";
import { parse } from "../../protocol/schema.ts";
import { RuntimeId } from "../../protocol/runtime.ts";
import { sessionStub } from "./sessions.ts";

const upgradeResponses = { 101: { description: "Switching protocols." } };

function requireUpgrade(c: AppContext): void {
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") throw new ApiError("WEBSOCKET_REQUIRED");
}

/** A clean upgrade request for a Durable Object, carrying only what it needs. */
function forward(c: AppContext, path: string, headers: Record<string, string> = {}): Request {
  const forwarded = new Headers({ Upgrade: "websocket", ...headers });
  const protocols = c.req.header("Sec-WebSocket-Protocol");
  if (protocols)
    forwarded.set(
      "Sec-WebSocket-Protocol",
      protocols
        .split(",")
        .filter((p) => !p.trim().startsWith("bearer."))
        .join(","),
    );
  return new Request(`https://internal${path}`, { headers: forwarded });
}

export function socketRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/sessions/:id/signal",
      tag: "Signaling",
      summary:
        "The native SDK's signaling socket: trickle ICE, status, commands and model messages (frames in protocol/signaling.ts). " +
        "Browsers authenticate with the subprotocols 'reactor.v1, bearer.<jwt>'.",
      auth: "bearer",
      responses: upgradeResponses,
      // INVALID_REQUEST: `generation` is not a non-negative integer.
      errors: ["WEBSOCKET_REQUIRED", "INVALID_REQUEST", "SESSION_NOT_FOUND"],
      parameters: [
        {
          name: "generation",
          in: "query",
          required: false,
          schema: { type: "integer", minimum: 0 },
          description:
            "The peer connection generation the client still holds (0: none). For any other, the runtime's report of " +
            "its peer connection is stale: the session becomes ACTIVE only once a new generation connects.",
        },
      ],
    },
    async (c) => {
      requireUpgrade(c);
      const principal = c.get("principal");
      const held = c.req.query("generation");
      if (held !== undefined && !/^\d{1,9}$/.test(held)) throw new ApiError("INVALID_REQUEST", "generation: must be a non-negative integer.");
      const headers: Record<string, string> = { "X-Account-Id": principal.accountId, "X-Token-Expires-At": String(principal.expiresAt) };
      if (held !== undefined) headers["X-Held-Generation"] = held;
      return sessionStub(c).fetch(forward(c, "/signal", headers));
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/runtime/connect",
      tag: "Runtimes",
      summary: "A GPU runtime's control socket for ?model=<name>: register, capacity, heartbeats, assignments.",
      auth: "runtime",
      responses: upgradeResponses,
      errors: ["WEBSOCKET_REQUIRED", "INVALID_REQUEST"], // INVALID_REQUEST: no valid ?model=
    },
    async (c) => {
      requireUpgrade(c);
      const model = parse(ModelName, c.req.query("model"));
      if (!model.ok) throw new ApiError("INVALID_REQUEST", `model: ${model.error.problem}`);
      const pool = modelPool(c.env, model.value);
      return pool.fetch(forward(c, `/connect?model=${encodeURIComponent(model.value)}`));
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/runtime/sessions/:id",
      tag: "Runtimes",
      summary: "A runtime's socket for one assigned session (?runtime_id=…): SDP, ICE, commands, messages.",
      auth: "runtime",
      responses: upgradeResponses,
      errors: ["WEBSOCKET_REQUIRED", "INVALID_REQUEST", "SESSION_NOT_FOUND", "SESSION_ENDED", "RUNTIME_NOT_ASSIGNED"],
    },
    async (c) => {
      requireUpgrade(c);
      const runtimeId = parse(RuntimeId, c.req.query("runtime_id"));
      if (!runtimeId.ok) throw new ApiError("INVALID_REQUEST", `runtime_id: ${runtimeId.error.problem}`);
      return sessionStub(c).fetch(forward(c, `/runtime?runtime_id=${encodeURIComponent(runtimeId.value)}`));
    },
  );
}
