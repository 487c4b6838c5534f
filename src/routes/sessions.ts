/**
 * The session API of the official client (`@reactor-team/js-sdk@2.9.0`): create, poll, restart and end sessions,
 * and exchange SDP through `/transport/webrtc`. Each handler validates, calls the session's Durable Object and
 * shapes the answer.
 */
import type { Hono } from "hono";
import { randomId } from "../../lib/encoding.ts";
import { sessionSettings } from "../config.ts";
import { ApiError } from "../errors.ts";
import { sessionRelay, unwrap } from "../objects.ts";
import { asReactorIceServers, iceServersFor, issuesTurn } from "../ice-servers.ts";
import { checkTurnRate } from "../limits/enforce.ts";
import { requireKnownModel } from "../models/known.ts";
import { route, type AppContext, type AppEnv, type RouteSpec } from "../http/route.ts";
import { jsonFits, LIMITS } from "../../protocol/common.ts";
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
} from "../../protocol/sessions.ts";

const SESSION_ID = /^ses_[A-Za-z0-9_-]{22}$/;
const TRANSPORT = "/sessions/:id/transport/webrtc";

/** Another account's session and one that does not exist look the same: SESSION_NOT_FOUND. */
const NOT_FOUND = ["SESSION_NOT_FOUND"] as const;
/** Calls that need the session live, and a current peer connection. */
const CONNECTION_ERRORS = ["SESSION_NOT_FOUND", "SESSION_ENDED", "CONNECTION_NOT_FOUND", "CONNECTION_SUPERSEDED"] as const;

/** The session's object, or 404 for ids that cannot exist (no object is created for guesses). */
export function sessionStub(c: AppContext) {
  const id = c.req.param("id") ?? "";
  if (!SESSION_ID.test(id)) throw new ApiError("SESSION_NOT_FOUND");
  return sessionRelay(c.env, id);
}

const longPollMs = (c: AppContext) => sessionSettings(c.env).longPollMs;

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
      responses: { 200: { description: "The session.", schema: SessionResponse } },
      // MODEL_NOT_FOUND's message names the known models the token may use; CONCURRENCY_LIMIT has no Retry-After
      // (end a session first), RATE_LIMITED (per model, or for the whole account) has one.
      errors: ["EXTRA_ARGS_TOO_LARGE", "MODEL_NOT_ALLOWED", "TOKEN_SESSION_LIMIT", "MODEL_NOT_FOUND", "CONCURRENCY_LIMIT", "RATE_LIMITED"],
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
      // The session takes its account slot itself (as a restart does): a refusal is the create's error.
      const stub = sessionRelay(c.env, sessionId);
      const session = unwrap(
        await stub.create({
          sessionId,
          accountId: principal.accountId,
          apiKeyId: principal.apiKeyId,
          tokenId: principal.tokenId,
          model: body.model.name,
          extraArgs: body.extra_args,
          token: { expiresAt: principal.expiresAt, maxSessions: principal.maxSessions },
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
      responses: { 200: { description: "The session.", schema: SessionResponse } },
      errors: NOT_FOUND,
    },
    async (c) => c.json(unwrap(await sessionStub(c).view(c.get("principal").accountId, longPollMs(c)))),
  );

  sessionRoute(
    app,
    {
      method: "get",
      path: "/sessions/:id/info",
      summary: "The session's id, state and cluster, answered at once.",
      responses: { 200: { description: "Short form.", schema: SessionInfo } },
      errors: NOT_FOUND,
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
      responses: { 200: { description: "The session.", schema: SessionResponse } },
      errors: ["SESSION_NOT_FOUND", "CONCURRENCY_LIMIT"],
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
      responses: { 200: { description: "The ended session.", schema: SessionResponse } },
      errors: NOT_FOUND,
    },
    async (c, body) => c.json(unwrap(await sessionStub(c).terminate(c.get("principal").accountId, body.reason))),
  );

  sessionRoute(
    app,
    {
      method: "get",
      path: "/v1/sessions/:id/events",
      summary: "The session's timeline (created, queued, assigned, offers, drops, reconnects, end and reason).",
      responses: { 200: { description: "Events, oldest first.", schema: SessionEventsResponse } },
      errors: NOT_FOUND,
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
      responses: { 200: { description: "ICE servers.", schema: IceServersResponse } },
      errors: ["SESSION_NOT_FOUND", "RATE_LIMITED"], // TURN credentials are rate-limited per account
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
  const offerResponses = { 202: { description: "Accepted; the answer follows at GET sdp_params." } };
  const answerResponses = {
    200: { description: "The runtime's answer.", schema: SdpAnswerResponse },
    202: { description: "Not answered yet (after holding the request up to LONG_POLL_MS)." },
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
          errors: [...CONNECTION_ERRORS, "SDP_TOO_LARGE"],
        },
        submitOffer,
      );
    }
    sessionRoute(
      app,
      { method: "get", path: base, summary: "The SDP answer, when there is one.", responses: answerResponses, errors: CONNECTION_ERRORS },
      getAnswer,
    );
  }

  sessionRoute(
    app,
    {
      method: "post",
      path: `${TRANSPORT}/connections`,
      summary: "Start a new peer connection; older connections' answers and candidates are dropped from now on.",
      responses: { 201: { description: "The connection.", schema: CreateConnectionResponse } },
      errors: ["SESSION_NOT_FOUND", "SESSION_ENDED"],
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
      responses: { 202: { description: "Relayed." } },
      errors: [...CONNECTION_ERRORS, "ICE_CANDIDATE_LIMIT"],
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
