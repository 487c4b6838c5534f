/**
 * The attack table: every way in that someone might try without the right to, each with the status and error code
 * it must get — and proof that it stored nothing: the victim's session object, its runtime and client sockets, the
 * model's pool, both accounts' limits objects and their D1 rows are exactly as they were before the attempt.
 *
 * Cases kept elsewhere and not repeated here (SECURITY.md lists them all with their tests):
 *   - forged and broken JWTs on a client route (alg none, HS256 with the public key, expired, tampered, unknown
 *     kid, …): test/worker/token-attacks.test.ts, "token attack table";
 *   - bad frames and bodies on every socket and route: test/worker/session-bad-input.test.ts;
 *   - presigned upload URL reuse, expiry and tampering, and another session's upload id (in a command, or read by
 *     a runtime): test/worker/uploads.test.ts, test/worker/upload-refs.test.ts;
 *   - scoped tokens (MODEL_NOT_ALLOWED, TOKEN_SESSION_LIMIT) and rate limits: test/worker/limits-*.test.ts.
 *
 * Here: credentials used where they do not belong, another account's session on every session route and socket
 * (enumerated from the route declarations, so a new route is covered or the coverage check fails), guessed and
 * enumerated session ids, TURN credentials for another session, SDP/ICE injection, the admin API, oversized
 * headers and bodies, CORS in production configuration, and requests held open (slow-loris) bounded by LONG_POLL_MS.
 *
 * One file over 500 lines on purpose: it is a table. Every attack is a row of ATTACKS with its threat, status and
 * code, checked by one loop against one snapshot of everything stored; the table reads (and is reviewed) as a whole,
 * and its coverage check needs every row in one place.
 */
import { env } from "cloudflare:workers";
import { base64url, importJWK, SignJWT, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { generateSigningKey } from "../../lib/signing-keys.ts";
import { ERROR_CODES, type ErrorCode } from "../../protocol/errors.ts";
import { createApp } from "../../src/app.ts";
import { declaredRoutes, type RouteSpec } from "../../src/http/route.ts";
import { call, mintToken, newApiKey } from "./helpers.ts";
import { accountStore, d1Rows, poolStore, sessionStore, storesNothing } from "./invariants.ts";
import { freshAccount } from "./limits-helpers.ts";
import {
  activeNativeSession,
  command,
  commandSeqs,
  createSession,
  freshModel,
  getJson,
  OFFER,
  RUNTIME_TOKEN,
  ScriptedRuntime,
  upgrade,
  type ClientAccount,
  type Peer,
} from "./scripted.ts";

const KiB = 1024;
const LONG_POLL_MS = Number(env.LONG_POLL_MS);
const PRODUCTION_ORIGINS = "https://app.example, https://admin.example";
const ADMIN_TOKEN = "test-admin-token";

// ── The fixture: a victim with an ACTIVE session, an attacker with sessions of its own ───────────────────────────

interface Fixture {
  victim: ClientAccount & { keyId: string; apiKey: string };
  attacker: ClientAccount & { keyId: string; apiKey: string };
  model: string;
  runtime: ScriptedRuntime;
  /** The victim's ACTIVE native session, its client socket and its runtime's session socket. */
  session: string;
  signal: Peer;
  runtimePeer: Peer;
  /** The attacker's own session, assigned to the same runtime and waiting for its client. */
  attackerSession: string;
  /** The attacker's own session on a model nobody serves: WAITING for a GPU. */
  waitingSession: string;
}

let f: Fixture;

async function account(prefix: string) {
  const id = freshAccount(prefix);
  const key = await newApiKey(id);
  return { account: id, jwt: (await mintToken(key.key)).jwt, keyId: key.id, apiKey: key.key };
}

beforeAll(async () => {
  const [victim, attacker] = [await account("victim"), await account("attacker")];
  const model = freshModel("attacked");
  const runtime = await new ScriptedRuntime(model, "gpu-victim", 2).connect();
  const { sessionId: session, signal, runtimePeer } = await activeNativeSession(model, runtime, victim);
  const { session_id: attackerSession } = await createSession(attacker, model);
  await runtime.acceptAssignment();
  const { session_id: waitingSession } = await createSession(attacker, freshModel("unserved"));
  await signal.sync();
  f = { victim, attacker, model, runtime, session, signal, runtimePeer, attackerSession, waitingSession };
});

// The pool's heartbeat watchdog runs on real time: a runtime silent for 15 s would be disconnected mid-table.
beforeEach(async () => {
  await f.runtime.heartbeat();
});

/** Everything an attempt could have changed. */
async function snapshot() {
  return {
    victimSession: await sessionStore(f.session),
    attackerSession: await sessionStore(f.attackerSession),
    waitingSession: await sessionStore(f.waitingSession),
    victimLimits: await accountStore(f.victim.account),
    attackerLimits: await accountStore(f.attacker.account),
    pool: await poolStore(f.model),
    d1: await d1Rows([f.victim.account, f.attacker.account, ...ADMIN_TARGETS]),
  };
}

// ── Tokens made by hand ────────────────────────────────────────────────────────────────────────────────────────

const signer: JWK = JSON.parse(env.JWT_SIGNING_KEYS).keys[0];
const now = () => Math.floor(Date.now() / 1000);

function claims(of: { account: string; keyId: string }, overrides: JWTPayload = {}): JWTPayload {
  return {
    iss: "reactor-gateway",
    aud: "reactor-clients",
    sub: of.account,
    key_id: of.keyId,
    jti: "attack",
    iat: now(),
    exp: now() + 600,
    ...overrides,
  };
}

async function sign(payload: JWTPayload, key: JWK = signer): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg!, kid: key.kid }).sign(await importJWK(key, key.alg));
}

/** The victim's account in a token signed by a key the gateway does not have, under the gateway's own kid. */
const forgedVictimToken = async () => sign(claims(f.victim), { ...(await generateSigningKey()), kid: signer.kid });
const expiredVictimToken = () => sign(claims(f.victim, { iat: now() - 7200, exp: now() - 3600 }));
const unsignedVictimToken = () =>
  `${base64url.encode(JSON.stringify({ alg: "none", kid: signer.kid }))}.${base64url.encode(JSON.stringify(claims(f.victim)))}.`;
/** The attacker's own token with the victim's account swapped in, signature kept. */
async function victimSwappedIn(): Promise<string> {
  const [header, payload, signature] = f.attacker.jwt.split(".") as [string, string, string];
  const swapped = { ...JSON.parse(new TextDecoder().decode(base64url.decode(payload))), sub: f.victim.account };
  return `${header}.${base64url.encode(JSON.stringify(swapped))}.${signature}`;
}

// ── Requests ───────────────────────────────────────────────────────────────────────────────────────────────────

const bearer = (token: string) => ({ Authorization: `Bearer ${token}`, "Content-Type": "application/json" });
const subprotocol = (token: string) => ({ "Sec-WebSocket-Protocol": `reactor.v1, bearer.${token}` });
const json = (body: unknown) => JSON.stringify(body);

function request(method: string, path: string, headers: Record<string, string> = {}, body?: BodyInit): Promise<Response> {
  return call(path, { method, headers, body });
}

/** A WebSocket upgrade; an upgrade that succeeds is closed at once (and fails the case). */
async function socket(path: string, headers: Record<string, string>): Promise<Response> {
  const { response, peer } = await upgrade(path, headers);
  peer?.close();
  return response;
}

/** The app in production configuration: only PRODUCTION_ORIGINS may call it from a browser. */
const production = createApp();
async function fromOrigin(origin: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Response> {
  return production.request(path, { method, headers: { Origin: origin, ...headers }, body }, { ...env, CORS_ALLOWED_ORIGINS: PRODUCTION_ORIGINS });
}

/** A body that arrives in chunks without a Content-Length (the limit must hold while reading, not only up front). */
function chunked(bytes: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      const chunk = new TextEncoder().encode(`{"pad":"${"x".repeat(16 * KiB)}",`);
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
}

const deeplyNested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
const transport = (id: string) => `/sessions/${id}/transport/webrtc`;
const randomSessionId = () => `ses_${base64url.encode(crypto.getRandomValues(new Uint8Array(16)))}`;

/** Admin attempts name these accounts: nothing may appear for them in D1. */
const ADMIN_TARGETS = ["attack-admin-1", "attack-admin-2", "attack-admin-3", "attack-admin-4", "attack-admin-5", "attack-admin-6"];

// ── The table ──────────────────────────────────────────────────────────────────────────────────────────────────

interface AttackCase {
  /** Threat group, as in SECURITY.md. */
  threat: string;
  name: string;
  status: number;
  code: ErrorCode;
  attempt: () => Promise<Response>;
  /** Extra proof for this case (the general "nothing changed" check runs for every case). */
  verify?: () => Promise<void>;
}

type Row = [name: string, status: number, code: ErrorCode, attempt: () => Promise<Response>];
const cases = (threat: string, rows: Row[]): AttackCase[] => rows.map(([name, status, code, attempt]) => ({ threat, name, status, code, attempt }));

const credentialCases = cases("credential in the wrong place", [
  [
    "a client JWT (subprotocol) on the runtime control socket",
    401,
    "RUNTIME_CREDENTIAL_INVALID",
    () => socket(`/v1/runtime/connect?model=${f.model}`, subprotocol(f.attacker.jwt)),
  ],
  [
    "a client JWT on the victim session's runtime socket",
    401,
    "RUNTIME_CREDENTIAL_INVALID",
    () => socket(`/v1/runtime/sessions/${f.session}?runtime_id=gpu-victim`, bearer(f.attacker.jwt)),
  ],
  [
    "a runtime credential on GET /sessions/{id}",
    401,
    "RUNTIME_CREDENTIAL_NOT_ACCEPTED",
    () => request("GET", `/sessions/${f.session}`, bearer(RUNTIME_TOKEN)),
  ],
  [
    "a runtime credential (subprotocol) on the signaling socket",
    401,
    "RUNTIME_CREDENTIAL_NOT_ACCEPTED",
    () => socket(`/v1/sessions/${f.session}/signal`, subprotocol(RUNTIME_TOKEN)),
  ],
  [
    "a runtime credential on POST /v1/turn-credentials",
    401,
    "RUNTIME_CREDENTIAL_NOT_ACCEPTED",
    () => request("POST", "/v1/turn-credentials", bearer(RUNTIME_TOKEN)),
  ],
  [
    "a runtime credential as an API key on POST /tokens",
    401,
    "API_KEY_MALFORMED",
    () => request("POST", "/tokens", { "Reactor-API-Key": RUNTIME_TOKEN }),
  ],
  ["a runtime credential on the admin API", 401, "ADMIN_UNAUTHORIZED", () => request("GET", "/admin/keys", bearer(RUNTIME_TOKEN))],
  ["the admin token as a client token", 401, "TOKEN_MALFORMED", () => request("GET", "/v1/usage", bearer(ADMIN_TOKEN))],
  [
    "an API key in Reactor-API-Key on a client route",
    401,
    "API_KEY_SENT_AS_TOKEN",
    () => request("GET", `/sessions/${f.attackerSession}`, { "Reactor-API-Key": f.attacker.apiKey }),
  ],
  [
    "an API key (subprotocol) on the signaling socket",
    401,
    "API_KEY_SENT_AS_TOKEN",
    () => socket(`/v1/sessions/${f.attackerSession}/signal`, subprotocol(f.attacker.apiKey)),
  ],
  [
    "an unknown runtime credential on the control socket",
    401,
    "RUNTIME_CREDENTIAL_INVALID",
    () => socket(`/v1/runtime/connect?model=${f.model}`, bearer(`rt_${"0".repeat(32)}`)),
  ],
  [
    "the runtime credential with its last character changed",
    401,
    "RUNTIME_CREDENTIAL_INVALID",
    () => socket(`/v1/runtime/connect?model=${f.model}`, bearer(`${RUNTIME_TOKEN.slice(0, -1)}0`)),
  ],
  [
    "a prefix of the runtime credential on the session's runtime socket",
    401,
    "RUNTIME_CREDENTIAL_INVALID",
    () => socket(`/v1/runtime/sessions/${f.session}?runtime_id=gpu-victim`, bearer(RUNTIME_TOKEN.slice(0, 12))),
  ],
  [
    "the victim's expired token (subprotocol) on its signaling socket",
    401,
    "TOKEN_EXPIRED",
    async () => socket(`/v1/sessions/${f.session}/signal`, subprotocol(await expiredVictimToken())),
  ],
  [
    "the attacker's token with the victim's account swapped in",
    401,
    "TOKEN_SIGNATURE_INVALID",
    async () => request("GET", `/sessions/${f.session}`, bearer(await victimSwappedIn())),
  ],
  [
    "an unsigned (alg none) token for the victim's account on its signaling socket",
    401,
    "TOKEN_ALGORITHM_NOT_ALLOWED",
    () => socket(`/v1/sessions/${f.session}/signal`, subprotocol(unsignedVictimToken())),
  ],
]);

/** Valid bodies for the session routes that take one (an invalid body would be refused before the ownership check). */
const SAMPLE_BODIES: Record<string, unknown> = {
  "POST /sessions/:id/transport/webrtc/sdp_params": { sdp_offer: OFFER },
  "PUT /sessions/:id/transport/webrtc/sdp_params": { sdp_offer: OFFER },
  "POST /sessions/:id/transport/webrtc/connections/:cid/sdp_params": { sdp_offer: OFFER },
  "PUT /sessions/:id/transport/webrtc/connections/:cid/sdp_params": { sdp_offer: OFFER },
  "POST /sessions/:id/transport/webrtc/connections/:cid/ice_candidates": {
    candidates: [{ candidate: "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host", sdp_mid: "0" }],
    is_final: true,
  },
  "DELETE /sessions/:id": { reason: "hijacked" },
  "POST /sessions/:id/uploads": { name: "payload.png", size: 10, mime_type: "image/png" },
};

const PARAMS: Record<string, () => string> = { cid: () => "conn_1", upload_id: () => `upl_${"A".repeat(22)}` };
const routeKey = (route: { method: string; path: string }) => `${route.method.toUpperCase()} ${route.path}`;

/** Every declared route that names a session (`:id`), once each. */
function sessionRoutes(auth: "bearer" | "runtime") {
  const seen = new Map<string, RouteSpec<unknown>>();
  for (const route of declaredRoutes(production)) if (route.auth === auth && route.path.includes("/:id")) seen.set(routeKey(route), route);
  return [...seen.values()];
}

function fillPath(path: string, sessionId: string): string {
  return path.replace(":id", sessionId).replace(/:(\w+)/g, (_, name: string) => PARAMS[name]!());
}

const crossAccountCases: AttackCase[] = sessionRoutes("bearer").map((route) => {
  const key = routeKey(route);
  const isSocket = route.path.endsWith("/signal");
  return {
    threat: "another account's session",
    name: `${key} with the victim's session id${key in SAMPLE_BODIES ? " and a valid body" : ""}`,
    status: 404,
    code: "SESSION_NOT_FOUND",
    attempt: () => {
      const path = fillPath(route.path, f.session);
      if (isSocket) return socket(path, subprotocol(f.attacker.jwt));
      if (route.body && !(key in SAMPLE_BODIES)) throw new Error(`${key} takes a body: add a valid sample to SAMPLE_BODIES`);
      return request(route.method.toUpperCase(), path, bearer(f.attacker.jwt), key in SAMPLE_BODIES ? json(SAMPLE_BODIES[key]) : undefined);
    },
  };
});

const crossRuntimeCases: AttackCase[] = [
  ...sessionRoutes("runtime").map(
    (route): AttackCase => ({
      threat: "another account's session",
      name: `${routeKey(route)} by a runtime not assigned to the session`,
      status: 403,
      code: "RUNTIME_NOT_ASSIGNED",
      attempt: () => {
        const path = `${fillPath(route.path, f.session)}?runtime_id=gpu-intruder`;
        return route.path.endsWith("/:id") ? socket(path, bearer(RUNTIME_TOKEN)) : request("GET", path, bearer(RUNTIME_TOKEN));
      },
    }),
  ),
  {
    threat: "another account's session",
    name: "a runtime that claims the victim's session in its register frame (another model's pool) and then opens it",
    status: 403,
    code: "RUNTIME_NOT_ASSIGNED",
    attempt: async () => {
      const claimer = await new ScriptedRuntime(freshModel("claimer"), "gpu-claimer", 1).connect([f.session]);
      const response = await socket(`/v1/runtime/sessions/${f.session}?runtime_id=gpu-claimer`, bearer(RUNTIME_TOKEN));
      claimer.control.close();
      return response;
    },
  },
];

const guessed = new Set<string>();
const guess = (id: string) => {
  guessed.add(id);
  return id;
};
/** Each guessed id's object must hold nothing afterwards (no record, not even its tables). */
async function guessesStoredNothing(): Promise<void> {
  for (const id of guessed) expect(await storesNothing(id), id).toBe(true);
  guessed.clear();
}

const guessCases = (
  [
    {
      name: "32 random well-formed session ids on GET /sessions/{id}/info",
      attempt: async () => {
        const responses = await Promise.all(
          Array.from({ length: 32 }, () => request("GET", `/sessions/${guess(randomSessionId())}/info`, bearer(f.attacker.jwt))),
        );
        const statuses = new Set(responses.map((response) => response.status));
        expect([...statuses]).toEqual([404]);
        return responses[0]!;
      },
    },
    {
      name: "the victim's id with its last character changed (enumeration) on GET /sessions/{id}",
      attempt: () => {
        const last = f.session.at(-1) === "A" ? "B" : "A";
        return request("GET", `/sessions/${guess(f.session.slice(0, -1) + last)}`, bearer(f.attacker.jwt));
      },
    },
    {
      name: "the victim's id in upper case on the signaling socket",
      attempt: () => socket(`/v1/sessions/${guess(`ses_${f.session.slice(4).toUpperCase()}`)}/signal`, subprotocol(f.attacker.jwt)),
    },
    {
      name: "a random well-formed id on the signaling socket",
      attempt: () => socket(`/v1/sessions/${guess(randomSessionId())}/signal`, subprotocol(f.attacker.jwt)),
    },
    {
      name: "a random well-formed id on the runtime session socket",
      attempt: () => socket(`/v1/runtime/sessions/${guess(randomSessionId())}?runtime_id=gpu-victim`, bearer(RUNTIME_TOKEN)),
    },
    {
      name: "the victim's id with one character appended (never reaches an object)",
      attempt: () => request("GET", `/sessions/${f.session}A`, bearer(f.attacker.jwt)),
    },
    {
      name: "a path-traversal id (ses_..%2F..%2Fadmin)",
      attempt: () => request("GET", "/sessions/ses_..%2F..%2Fadmin/info", bearer(f.attacker.jwt)),
    },
    {
      name: "a random well-formed id on GET /v1/sessions/{id}/usage",
      attempt: () => request("GET", `/v1/sessions/${guess(randomSessionId())}/usage`, bearer(f.attacker.jwt)),
    },
  ] satisfies { name: string; attempt: () => Promise<Response> }[]
).map(
  (partial): AttackCase => ({
    threat: "guessed or enumerated session id",
    status: 404,
    code: "SESSION_NOT_FOUND",
    verify: guessesStoredNothing,
    ...partial,
  }),
);

const turnCases = cases("TURN credential for another session", [
  [
    "TURN credentials for the victim's session with the victim's expired token",
    401,
    "TOKEN_EXPIRED",
    async () => request("GET", `${transport(f.session)}/ice_servers`, bearer(await expiredVictimToken())),
  ],
  [
    "TURN credentials for the victim's session with a forged victim token",
    401,
    "TOKEN_SIGNATURE_INVALID",
    async () => request("GET", `${transport(f.session)}/ice_servers`, bearer(await forgedVictimToken())),
  ],
  ["POST /v1/turn-credentials without a token", 401, "TOKEN_MISSING", () => request("POST", "/v1/turn-credentials")],
]);

const injectionCases = cases("SDP/ICE injected into another session", [
  [
    "an SDP offer into the victim's session with a forged victim token",
    401,
    "TOKEN_SIGNATURE_INVALID",
    async () => request("POST", `${transport(f.session)}/sdp_params`, bearer(await forgedVictimToken()), json({ sdp_offer: OFFER })),
  ],
  [
    "ICE candidates into the victim's session with the victim's expired token",
    401,
    "TOKEN_EXPIRED",
    async () =>
      request(
        "POST",
        `${transport(f.session)}/connections/conn_1/ice_candidates`,
        bearer(await expiredVictimToken()),
        json({ candidates: [{ candidate: "candidate:9 1 udp 1 203.0.113.9 9 typ host" }] }),
      ),
  ],
  [
    "an SDP offer on the runtime's session socket presented with a client token",
    401,
    "RUNTIME_CREDENTIAL_INVALID",
    () => socket(`/v1/runtime/sessions/${f.session}?runtime_id=gpu-victim`, subprotocol(f.victim.jwt)),
  ],
]);

const adminCases = cases("admin API without the admin token", [
  [
    "POST /admin/keys without a token",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("POST", "/admin/keys", { "Content-Type": "application/json" }, json({ account: ADMIN_TARGETS[0] })),
  ],
  [
    "POST /admin/keys with a wrong token of the same length",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("POST", "/admin/keys", bearer(ADMIN_TOKEN.replace(/.$/, "X")), json({ account: ADMIN_TARGETS[1] })),
  ],
  [
    "POST /admin/keys with the token and a suffix",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("POST", "/admin/keys", bearer(`${ADMIN_TOKEN}x`), json({ account: ADMIN_TARGETS[2] })),
  ],
  [
    "POST /admin/keys with an empty bearer",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("POST", "/admin/keys", { Authorization: "Bearer ", "Content-Type": "application/json" }, json({ account: ADMIN_TARGETS[3] })),
  ],
  [
    "POST /admin/keys with the admin token in Reactor-API-Key",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("POST", "/admin/keys", { "Reactor-API-Key": ADMIN_TOKEN, "Content-Type": "application/json" }, json({ account: ADMIN_TARGETS[4] })),
  ],
  [
    "POST /admin/keys with the admin token under the Basic scheme",
    401,
    "ADMIN_UNAUTHORIZED",
    () =>
      request(
        "POST",
        "/admin/keys",
        { Authorization: `Basic ${btoa(`admin:${ADMIN_TOKEN}`)}`, "Content-Type": "application/json" },
        json({ account: ADMIN_TARGETS[5] }),
      ),
  ],
  [
    "PUT /admin/accounts/{victim}/limits with the victim's client token",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("PUT", `/admin/accounts/${f.victim.account}/limits`, bearer(f.victim.jwt), json({ concurrent_sessions: 100_000 })),
  ],
  [
    "DELETE /admin/keys/{victim's key} with the runtime credential",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("DELETE", `/admin/keys/${f.victim.keyId}`, bearer(RUNTIME_TOKEN)),
  ],
  [
    "GET /admin/keys?account={victim} with the attacker's API key as a bearer",
    401,
    "ADMIN_UNAUTHORIZED",
    () => request("GET", `/admin/keys?account=${f.victim.account}`, bearer(f.attacker.apiKey)),
  ],
]);

const oversizedCases = cases("oversized headers and bodies", [
  [
    "POST /sessions with a 300 KiB body",
    413,
    "PAYLOAD_TOO_LARGE",
    () => request("POST", "/sessions", bearer(f.attacker.jwt), json({ model: { name: f.model }, pad: "x".repeat(300 * KiB) })),
  ],
  [
    "POST sdp_params with a 300 KiB body in chunks, no Content-Length",
    413,
    "PAYLOAD_TOO_LARGE",
    () =>
      call(`${transport(f.attackerSession)}/sdp_params`, {
        method: "POST",
        headers: bearer(f.attacker.jwt),
        body: chunked(300 * KiB),
        duplex: "half",
      } as RequestInit),
  ],
  [
    "POST /admin/keys (admin token) with a 300 KiB body",
    413,
    "PAYLOAD_TOO_LARGE",
    () => request("POST", "/admin/keys", bearer(ADMIN_TOKEN), json({ account: ADMIN_TARGETS[0], name: "x".repeat(300 * KiB) })),
  ],
  [
    "a 5 KiB token in the signaling socket's subprotocol",
    401,
    "TOKEN_TOO_LARGE",
    () => socket(`/v1/sessions/${f.attackerSession}/signal`, subprotocol(`eyJ${"a".repeat(5 * KiB)}.e30.x`)),
  ],
  [
    "a 1 MiB Authorization header",
    401,
    "TOKEN_TOO_LARGE",
    () => request("GET", "/v1/models", { Authorization: `Bearer eyJ${"a".repeat(1024 * KiB)}.e30.x` }),
  ],
  [
    "a 64 KiB Reactor-API-Version header on POST /sessions",
    400,
    "INVALID_REQUEST",
    () =>
      request("POST", "/sessions", { ...bearer(f.attacker.jwt), "Reactor-API-Version": "1".repeat(64 * KiB) }, json({ model: { name: f.model } })),
  ],
  [
    "POST /sessions with extra_args nested 10,000 levels deep",
    400,
    "INVALID_REQUEST",
    () => request("POST", "/sessions", bearer(f.attacker.jwt), `{"model":{"name":"${f.model}"},"extra_args":{"deep":${deeplyNested(10_000)}}}`),
  ],
  [
    "POST /sessions with extra_args of 65 keys",
    400,
    "INVALID_REQUEST",
    () =>
      request(
        "POST",
        "/sessions",
        bearer(f.attacker.jwt),
        json({ model: { name: f.model }, extra_args: Object.fromEntries(Array.from({ length: 65 }, (_, n) => [`k${n}`, n])) }),
      ),
  ],
]);

const EVIL = "https://evil.example";
const corsCases = cases("CORS from a disallowed origin (production configuration)", [
  [
    "the official client's preflight from a disallowed origin",
    403,
    "ORIGIN_NOT_ALLOWED",
    () =>
      fromOrigin(EVIL, "OPTIONS", "/sessions", {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
      }),
  ],
  [
    "POST /sessions with a valid token from a disallowed origin",
    403,
    "ORIGIN_NOT_ALLOWED",
    () => fromOrigin(EVIL, "POST", "/sessions", bearer(f.attacker.jwt), json({ model: { name: f.model } })),
  ],
  [
    "POST /tokens with a valid API key from a disallowed origin",
    403,
    "ORIGIN_NOT_ALLOWED",
    () => fromOrigin(EVIL, "POST", "/tokens", { "Reactor-API-Key": f.attacker.apiKey }),
  ],
  [
    "DELETE /sessions/{id} with the victim's own token from a disallowed origin",
    403,
    "ORIGIN_NOT_ALLOWED",
    () => fromOrigin(EVIL, "DELETE", `/sessions/${f.session}`, bearer(f.victim.jwt)),
  ],
  [
    "the signaling socket with the victim's own token from a disallowed origin (no preflight for WebSockets)",
    403,
    "ORIGIN_NOT_ALLOWED",
    () => fromOrigin(EVIL, "GET", `/v1/sessions/${f.session}/signal`, { Upgrade: "websocket", ...subprotocol(f.victim.jwt) }),
  ],
  [
    "Origin: null (a sandboxed frame or a file)",
    403,
    "ORIGIN_NOT_ALLOWED",
    () => fromOrigin("null", "POST", "/v1/turn-credentials", bearer(f.attacker.jwt)),
  ],
  [
    "an origin that only ends like an allowed one",
    403,
    "ORIGIN_NOT_ALLOWED",
    () => fromOrigin("https://app.example.evil.example", "POST", "/sessions", bearer(f.attacker.jwt), json({ model: { name: f.model } })),
  ],
  [
    "an allowed host over plain http",
    403,
    "ORIGIN_NOT_ALLOWED",
    () => fromOrigin("http://app.example", "POST", "/sessions", bearer(f.attacker.jwt), json({ model: { name: f.model } })),
  ],
]);

const ATTACKS: AttackCase[] = [
  ...credentialCases,
  ...crossAccountCases,
  ...crossRuntimeCases,
  ...guessCases,
  ...turnCases,
  ...injectionCases,
  ...adminCases,
  ...oversizedCases,
  ...corsCases,
];
const results: { threat: string; rejected: boolean; unchanged: boolean }[] = [];

describe(`attack table (${ATTACKS.length} cases)`, () => {
  it("covers every session route the gateway declares", () => {
    const bearerRoutes = sessionRoutes("bearer").map(routeKey);
    expect(crossAccountCases).toHaveLength(bearerRoutes.length);
    // The routes of the official client's session API and the native socket, at least (more are added as they land).
    expect(bearerRoutes).toEqual(
      expect.arrayContaining([
        "GET /sessions/:id",
        "PUT /sessions/:id",
        "DELETE /sessions/:id",
        "GET /sessions/:id/transport/webrtc/ice_servers",
        "POST /sessions/:id/transport/webrtc/connections/:cid/ice_candidates",
        "GET /v1/sessions/:id/signal",
        "GET /v1/sessions/:id/usage",
      ]),
    );
    expect(ATTACKS.length).toBeGreaterThanOrEqual(40);
  });

  it.each(ATTACKS.map((attack) => [`${attack.threat}: ${attack.name} → ${attack.status} ${attack.code}`, attack] as const))(
    "%s",
    async (_, attack) => {
      expect(ERROR_CODES[attack.code].status).toBe(attack.status); // the table itself agrees with src/errors.ts
      const before = await snapshot();
      const response = await attack.attempt();
      const body = (await response.json()) as { error?: { code?: string } };
      const rejected = response.status === attack.status && body.error?.code === attack.code;
      expect({ status: response.status, code: body.error?.code }).toEqual({ status: attack.status, code: attack.code });
      await attack.verify?.();
      // Nothing stored: every store is as it was, and neither of the victim's peers heard anything.
      expect(await snapshot()).toEqual(before);
      expect(await f.signal.sync()).toEqual([]);
      expect(f.runtimePeer.frames).toEqual([]);
      results.push({ threat: attack.threat, rejected, unchanged: true });
    },
  );

  it("afterwards the victim's session works end to end, and its runtime was sent nothing but the victim's command", async () => {
    f.signal.send(command(1));
    expect(commandSeqs(await f.runtimePeer.takeUntil("command"))).toEqual([1]);
    expect(f.runtimePeer.frames).toEqual([]);
    f.runtimePeer.send({ type: "command_ack", seq: 1 });
    expect(await f.signal.next((frame) => frame.type === "command_status" && frame.state === "acknowledged")).toMatchObject({ seq: 1 });
    expect((await getJson(f.victim, `/sessions/${f.session}/info`)).body.state).toBe("ACTIVE");
  });

  it("allowed and same-origin browsers still get through in production configuration (so the CORS cases test what they claim)", async () => {
    const allowed = await fromOrigin("https://app.example", "GET", "/v1/whoami", bearer(f.attacker.jwt));
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
    expect((await fromOrigin("http://localhost", "GET", "/health")).status).toBe(200); // the gateway's own origin (app.request's host)
    expect(
      (await production.request("/v1/whoami", { headers: bearer(f.attacker.jwt) }, { ...env, CORS_ALLOWED_ORIGINS: PRODUCTION_ORIGINS })).status,
    ).toBe(200);
  });
});

afterAll(() => {
  const byThreat = new Map<string, number>();
  for (const result of results) byThreat.set(result.threat, (byThreat.get(result.threat) ?? 0) + 1);
  const rejected = results.filter((result) => result.rejected && result.unchanged).length;
  console.log(
    [
      `attack table: ${results.length} of ${ATTACKS.length} cases run, ${rejected} rejected with the expected status and code and nothing stored`,
      ...[...byThreat].map(([threat, count]) => `  ${String(count).padStart(3)}  ${threat}`),
    ].join("\n"),
  );
});

// ── Held requests (slow-loris): bounded by LONG_POLL_MS, however many ──────────────────────────────────────────

describe("requests held open are bounded by LONG_POLL_MS", () => {
  const BOUND_MS = LONG_POLL_MS + 3000; // generous: a loaded CI machine answers late, never early

  async function timed(response: Promise<Response>): Promise<{ status: number; ms: number }> {
    const started = Date.now();
    const answered = await response;
    await answered.text();
    return { status: answered.status, ms: Date.now() - started };
  }

  it(`16 concurrent GET /sessions/{id} on a session waiting for a GPU are each answered 200 within ${LONG_POLL_MS} ms + 3 s`, async () => {
    const held = await Promise.all(Array.from({ length: 16 }, () => timed(request("GET", `/sessions/${f.waitingSession}`, bearer(f.attacker.jwt)))));
    for (const { status, ms } of held) {
      expect(status).toBe(200);
      expect(ms).toBeGreaterThanOrEqual(LONG_POLL_MS - 50);
      expect(ms).toBeLessThan(BOUND_MS);
    }
  });

  it("16 concurrent GET sdp_params with no answer yet are each answered 202 within the bound", async () => {
    expect((await request("POST", `${transport(f.attackerSession)}/sdp_params`, bearer(f.attacker.jwt), json({ sdp_offer: OFFER }))).status).toBe(
      202,
    );
    const held = await Promise.all(
      Array.from({ length: 16 }, () => timed(request("GET", `${transport(f.attackerSession)}/sdp_params`, bearer(f.attacker.jwt)))),
    );
    for (const { status, ms } of held) {
      expect(status).toBe(202);
      expect(ms).toBeLessThan(BOUND_MS);
    }
  });

  it("held requests are let go at once when the session ends (409 SESSION_ENDED for the answer)", async () => {
    const answer = timed(request("GET", `${transport(f.attackerSession)}/sdp_params`, bearer(f.attacker.jwt)));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await request("DELETE", `/sessions/${f.attackerSession}`, bearer(f.attacker.jwt))).status).toBe(200);
    const { status, ms } = await answer;
    expect(status).toBe(ERROR_CODES.SESSION_ENDED.status);
    expect(ms).toBeLessThan(LONG_POLL_MS);
  });
});
