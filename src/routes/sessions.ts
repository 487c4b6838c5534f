/**
 * The session API of the official client (`@reactor-team/js-sdk@2.9.0`): create, poll, restart and end sessions,
 * and exchange SDP through `/transport/webrtc`. Each handler validates, calls the session's Durable Object and
 * shapes the answer.
 */
import type { Hono } from "hono";
import { randomId } from "../auth/encoding.ts";
import { sessionSettings } from "../config.ts";
import { ApiError } from "../errors.ts";
import { asReactorIceServers, iceServersFor, issuesTurn } from "../ice-servers.ts";
import { acquireCreationSlot, checkTurnRate } from "../limits/enforce.ts";
import { requireKnownModel } from "../models/known.ts";
import { route, type AppContext, type AppEnv, type RouteSpec } from "../http/route.ts";
import { jsonFits, LIMITS } from "../protocol/common.ts";
import { ErrorResponse } from "../protocol/http.ts";
import {
  CreateConnectionResponse,
  CreateSessionRequest,
  IceCandidatesRequest,
  IceServersResponse,
  SdpAnswerResponse,
  SdpOfferRequest,
  SessionEventsResponse,
  SessionInfo,
  SessionResponse,
  TerminateSessionRequest,
} from "../protocol/sessions.ts";
import type { Result } from "../../durable-objects/session/session-relay.ts";

const SESSION_ID = /^ses_[A-Za-z0-9_-]{22}$/;
const TRANSPORT = "/sessions/:id/transport/webrtc";

const notFound = { description: "No such session for this account.", schema: ErrorResponse };
const refused = { description: "Missing or invalid token.", schema: ErrorResponse };

/** The session's object, or 404 for ids that cannot exist (no object is created for guesses). */
export function sessionStub(c: AppContext) {
  const id = c.req.param("id") ?? "";
  if (!SESSION_ID.test(id)) throw new ApiError("SESSION_NOT_FOUND");
  return c.env.SESSION_RELAY.get(c.env.SESSION_RELAY.idFromName(id));
}

export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new ApiError(result.code, result.message, result.retryAfter);
  return result.value;
}

const longPollMs = (c: AppContext) => sessionSettings(c.env as unknown as Record<string, unknown>).longPollMs;

function sessionRoute<B>(app: Hono<AppEnv>, spec: Omit<RouteSpec<B>, "auth" | "tag">, handler: Parameters<typeof route<B>>[2]) {
  route(app, { ...spec, auth: "bearer", tag: spec.path.includes("/transport/") ? "Transport" : "Sessions" }, handler);
}

export function sessionRoutes(app: Hono<AppEnv>): void {
  sessionRoute(
    app,
    {
      method: "post",
      path: "/sessions",
      summary:
        "Create a session on a model a runtime has registered. It is WAITING until a GPU is free (not billed meanwhile); " +
        "while no runtime of the model is connected its reason is no_runtime_connected.",
      body: CreateSessionRequest,
      responses: {
        200: { description: "The session.", schema: SessionResponse },
        400: { description: "Invalid body.", schema: ErrorResponse },
        401: refused,
        413: { description: "EXTRA_ARGS_TOO_LARGE: extra_args exceed 64 KiB of JSON.", schema: ErrorResponse },
        403: { description: "The token is narrowed to other models, or has created its max_sessions.", schema: ErrorResponse },
        404: {
          description: "MODEL_NOT_FOUND: no runtime has ever served a model by that name; the message names the known models the token may use.",
          schema: ErrorResponse,
        },
        429: {
          description:
            "CONCURRENCY_LIMIT: the account has all its concurrent sessions (no Retry-After: end one first). " +
            "RATE_LIMITED: over a creation rate (per model, or for the whole account); see Retry-After.",
          schema: ErrorResponse,
        },
      },
    },
    async (c, body) => {
      const principal = c.get("principal");
      if (principal.models && !principal.models.includes(body.model.name)) {
        throw new ApiError("MODEL_NOT_ALLOWED", `This token may use only: ${principal.models.join(", ")}.`);
      }
      // They travel to the runtime in one frame: bounded well under its frame limit, or the model would never start.
      if (body.extra_args !== undefined && !jsonFits(body.extra_args, LIMITS.extraArgsBytes)) throw new ApiError("EXTRA_ARGS_TOO_LARGE");
      // Before anything is created or counted: a made-up name gets no session, no pool, no slot (src/models/known.ts).
      await requireKnownModel(c.env.DB, body.model.name, principal.models);
      const sessionId = `ses_${randomId(16)}`;
      // The slot is taken before the session exists; if creating it fails, the slot audit frees the slot.
      const limits = await acquireCreationSlot(c.env, principal, sessionId, body.model.name);
      const stub = c.env.SESSION_RELAY.get(c.env.SESSION_RELAY.idFromName(sessionId));
      const session = unwrap(
        await stub.create({
          sessionId,
          accountId: principal.accountId,
          apiKeyId: principal.apiKeyId,
          tokenId: principal.tokenId,
          model: body.model.name,
          extraArgs: body.extra_args,
          maxDurationMs: Math.min(limits.maxSessionSeconds, principal.maxSessionSeconds ?? Infinity) * 1000,
          tokenMaxDurationMs: principal.maxSessionSeconds === null ? undefined : principal.maxSessionSeconds * 1000,
        }),
      );
      return c.json(session);
    },
  );

  sessionRoute(
    app,
    {
      method: "get",
      path: "/sessions/:id",
      summary: "The session. Held open (LONG_POLL_MS) until a GPU accepts it, so polling clients never oversleep.",
      responses: { 200: { description: "The session.", schema: SessionResponse }, 401: refused, 404: notFound },
    },
    async (c) => c.json(unwrap(await sessionStub(c).view(c.get("principal").accountId, longPollMs(c)))),
  );

  sessionRoute(
    app,
    {
      method: "get",
      path: "/sessions/:id/info",
      summary: "The session's id, state and cluster, answered at once.",
      responses: { 200: { description: "Short form.", schema: SessionInfo }, 401: refused, 404: notFound },
    },
    async (c) => {
      const { session_id, state, cluster } = unwrap<SessionResponse>(await sessionStub(c).view(c.get("principal").accountId));
      return c.json({ session_id, state, cluster });
    },
  );

  sessionRoute(
    app,
    {
      method: "put",
      path: "/sessions/:id",
      summary: "Restart an INACTIVE session on another GPU, keeping its id. It takes one of the account's concurrent sessions again.",
      responses: {
        200: { description: "The session.", schema: SessionResponse },
        401: refused,
        404: notFound,
        429: { description: "CONCURRENCY_LIMIT: the account has all its concurrent sessions; end one first.", schema: ErrorResponse },
      },
    },
    async (c) => c.json(unwrap(await sessionStub(c).restart(c.get("principal").accountId))),
  );

  sessionRoute(
    app,
    {
      method: "delete",
      path: "/sessions/:id",
      summary: "End the session now and release its GPU.",
      body: TerminateSessionRequest,
      bodyOptional: true,
      responses: { 200: { description: "The ended session.", schema: SessionResponse }, 401: refused, 404: notFound },
    },
    async (c, body) => c.json(unwrap(await sessionStub(c).terminate(c.get("principal").accountId, body.reason))),
  );

  sessionRoute(
    app,
    {
      method: "get",
      path: "/v1/sessions/:id/events",
      summary: "The session's timeline (created, queued, assigned, offers, drops, reconnects, end and reason).",
      responses: { 200: { description: "Events, oldest first.", schema: SessionEventsResponse }, 401: refused, 404: notFound },
    },
    async (c) => c.json(unwrap(await sessionStub(c).events(c.get("principal").accountId))),
  );

  transportRoutes(app);
}

function transportRoutes(app: Hono<AppEnv>): void {
  sessionRoute(
    app,
    {
      method: "get",
      path: `${TRANSPORT}/ice_servers`,
      summary: "ICE servers for the client's peer connection.",
      responses: { 200: { description: "ICE servers.", schema: IceServersResponse }, 401: refused, 404: notFound },
    },
    async (c) => {
      const principal = c.get("principal");
      const sessionId = c.req.param("id")!;
      unwrap(await sessionStub(c).view(principal.accountId));
      if (issuesTurn(c.env)) await checkTurnRate(c.env, principal.accountId, sessionId);
      const issued = await iceServersFor(c.env, { subject: sessionId, notAfter: principal.expiresAt });
      return c.json({ ice_servers: asReactorIceServers(issued.iceServers) });
    },
  );

  const submitOffer = async (c: AppContext, body: { sdp_offer: string; track_mapping?: unknown }) => {
    const result = await sessionStub(c).submitOffer(c.get("principal").accountId, {
      sdp: body.sdp_offer,
      trackMapping: body.track_mapping,
      connectionId: c.req.param("cid"),
    });
    return c.json(unwrap(result), 202);
  };
  const getAnswer = async (c: AppContext) => {
    const answer = unwrap(await sessionStub(c).answer(c.get("principal").accountId, c.req.param("cid"), longPollMs(c)));
    return answer === null ? c.json({ status: "pending" }, 202) : c.json(answer, 200);
  };
  const offerResponses = {
    202: { description: "Accepted; the answer follows at GET sdp_params." },
    401: refused,
    404: notFound,
    409: { description: "The session has ended.", schema: ErrorResponse },
    413: { description: "SDP over 64 KiB.", schema: ErrorResponse },
  };
  const answerResponses = {
    200: { description: "The runtime's answer.", schema: SdpAnswerResponse },
    202: { description: "Not answered yet (after holding the request up to LONG_POLL_MS)." },
    401: refused,
    404: notFound,
    410: { description: "A newer connection superseded this one.", schema: ErrorResponse },
  };

  for (const base of [`${TRANSPORT}/sdp_params`, `${TRANSPORT}/connections/:cid/sdp_params`]) {
    for (const method of ["post", "put"] as const) {
      sessionRoute(
        app,
        {
          method,
          path: base,
          summary: method === "post" ? "Send the client's SDP offer (first connect)." : "Send a new SDP offer (reconnect).",
          body: SdpOfferRequest,
          responses: offerResponses,
        },
        submitOffer,
      );
    }
    sessionRoute(app, { method: "get", path: base, summary: "The SDP answer, when there is one.", responses: answerResponses }, getAnswer);
  }

  sessionRoute(
    app,
    {
      method: "post",
      path: `${TRANSPORT}/connections`,
      summary: "Start a new peer connection; older connections' answers and candidates are dropped from now on.",
      responses: { 201: { description: "The connection.", schema: CreateConnectionResponse }, 401: refused, 404: notFound },
    },
    async (c) => c.json(unwrap(await sessionStub(c).createConnection(c.get("principal").accountId)), 201),
  );

  sessionRoute(
    app,
    {
      method: "post",
      path: `${TRANSPORT}/connections/:cid/ice_candidates`,
      summary: "Trickle the client's ICE candidates to the runtime.",
      body: IceCandidatesRequest,
      responses: {
        202: { description: "Relayed." },
        401: refused,
        404: notFound,
        410: { description: "A newer connection superseded this one.", schema: ErrorResponse },
        429: { description: "Too many candidates for this connection.", schema: ErrorResponse },
      },
    },
    async (c, body) => {
      const result = await sessionStub(c).addClientCandidates(
        c.get("principal").accountId,
        c.req.param("cid") ?? "",
        body.candidates,
        body.is_final === true,
      );
      return c.json(unwrap(result), 202);
    },
  );
}
