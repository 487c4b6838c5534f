/**
 * Fuzzing the REST API with generated and mutated requests (test/worker/fuzz-kit.ts), for every route the gateway
 * declares (src/http/route.ts records each declaration with its body schema, so a new route is fuzzed as soon as it
 * exists): JSON bodies, path parameters, query strings and headers. Requests go to the real app with the real
 * bindings (D1, R2, the objects), with the right credential for the route so they get past authentication; most
 * through `app.request`, a share through the Worker's own fetch.
 *
 * Invariants, for every request: never a 500; every error answer has a code from src/errors.ts and that code's
 * status. Afterwards the fuzzed session still works for its client and runtime (a REST offer/answer exchange, ICE).
 */
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app.ts";
import { declaredRoutes, type RouteSpec } from "../../src/http/route.ts";
import { BASE, mintToken, newApiKey, POLL } from "./helpers.ts";
import { fitting, fuzzSettings, samples, show, Tally, type Sample } from "./fuzz-kit.ts";
import { freshAccount, setLimits } from "./limits-helpers.ts";
import {
  ANSWER,
  createSession,
  freshModel,
  getJson,
  OFFER,
  RUNTIME_TOKEN,
  ScriptedRuntime,
  stateOf,
  type ClientAccount,
  type Peer,
} from "./scripted.ts";

const { frames: TOTAL, seed: SEED } = fuzzSettings();
/**
 * The REST share of the run's frames (the sockets' shares are in fuzz-sockets). Smaller than theirs: a request that
 * gets through to an object or D1 costs ~10 ms here, a refused one well under 1 ms.
 */
const SHARE = 0.08;
const BATCH = 500;
/** Out of every batch, this many go through the Worker's own fetch instead of `app.request`. */
const OVER_FETCH = 10;

/** No request may be held: a long-poll that waits for an answer would only slow the fuzzer down. */
const bindings = { ...env, LONG_POLL_MS: "0" } as Env;
const app = createApp();
const routes = declaredRoutes(app);

/** Query parameters each route reads (besides those its declaration lists). */
const QUERIES: Record<string, string[]> = {
  "/v1/usage": ["from", "to", "group_by"],
  "/admin/keys": ["account"],
  "/v1/runtime/connect": ["model"],
  "/v1/runtime/sessions/:id": ["runtime_id"],
  "/v1/runtime/sessions/:id/uploads/:upload_id": ["runtime_id"],
};

interface Fixture {
  client: ClientAccount;
  apiKey: string;
  keyId: string;
  runtime: ScriptedRuntime;
  runtimePeer: Peer;
  /** The fuzzed session: a REST client's, assigned to the runtime. */
  sessionId: string;
  /** DELETE /sessions/{id} ends what it is given: it gets a session of its own. */
  doomedId: string;
  limitsAccount: string;
}
let f: Fixture;

const tally = new Tally("REST bodies, paths, queries and headers (every declared route)", Math.round(TOTAL * SHARE));
const consoleErrors: string[] = [];

beforeAll(async () => {
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void consoleErrors.push(args.map(String).join(" ")));
  const account = freshAccount("fuzz");
  await setLimits(account, { max_session_seconds: 7 * 24 * 3600 }); // a nightly run outlasts SESSION_MAX_SECONDS
  const key = await newApiKey(account);
  const client = { account, jwt: (await mintToken(key.key)).jwt };
  const model = freshModel("fuzz-rest");
  const runtime = await new ScriptedRuntime(model, "gpu-rest", 2).connect();
  const { session_id: sessionId } = await createSession(client, model);
  const { peer: runtimePeer } = await runtime.acceptAssignment();
  // ACTIVE before the run (a session left waiting for its client would end after SESSION_CONNECT_SECONDS).
  const offered = await getJson(client, `/sessions/${sessionId}/transport/webrtc/sdp_params`, {
    method: "POST",
    body: JSON.stringify({ sdp_offer: OFFER }),
  });
  if (offered.status !== 202) throw new Error(`offer refused: ${offered.status}`);
  runtimePeer.send({ type: "answer", generation: 1, sdp: ANSWER });
  runtimePeer.send({ type: "peer_state", generation: 1, state: "connected" });
  for (let tries = 0; (await stateOf(client, sessionId)) !== "ACTIVE"; tries++) {
    if (tries > 200) throw new Error("the fuzzed session did not become ACTIVE");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const { session_id: doomedId } = await createSession(client, model);
  await runtime.acceptAssignment();
  f = { client, apiKey: key.key, keyId: key.id, runtime, runtimePeer, sessionId, doomedId, limitsAccount: freshAccount("fuzz-limits") };
});

afterAll(() => {
  vi.restoreAllMocks();
  console.log(`fuzz (seed ${SEED}, FUZZ_FRAMES ${TOTAL}):\n  ${tally.summary()}`);
});

function credential(route: RouteSpec<unknown>): Record<string, string> {
  switch (route.auth) {
    case "bearer":
      return { Authorization: `Bearer ${f.client.jwt}` };
    case "admin":
      return { Authorization: "Bearer test-admin-token" };
    case "apiKey":
      return { "Reactor-API-Key": f.apiKey };
    case "runtime":
      return { Authorization: `Bearer ${RUNTIME_TOKEN}` };
    case "none":
      return {};
  }
}

function pathParam(name: string, route: RouteSpec<unknown>): string {
  switch (name) {
    case "id":
      // Ending the session, or opening a native socket on it (which makes it a native client's), goes elsewhere.
      return route.method === "delete" || route.path.endsWith("/signal") ? f.doomedId : f.sessionId;
    case "cid":
      return "conn_1";
    case "account":
      return f.limitsAccount;
    case "keyId":
      return `${f.keyId}x`; // never the fuzz client's own key: revoking it would end the run
    case "upload_id":
      return `upl_${"A".repeat(22)}`;
    default:
      return "x";
  }
}

/** Values for path and query parameters: what fits, mutations of the real ones, and junk. */
const paramValue = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40, unit: "binary" }) },
  { weight: 2, arbitrary: fc.stringMatching(/^(ses|conn|upl|key)_[A-Za-z0-9_-]{0,30}$/) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "..",
      "../..",
      "%2e%2e%2f",
      "%00",
      "-1",
      "1e999",
      "NaN",
      "ses_AAAAAAAAAAAAAAAAAAAAAA",
      "conn_0",
      "conn_9999999",
      "x".repeat(5000),
      "2026-02-30",
      "0",
    ),
  },
  { weight: 2, arbitrary: fc.integer().map(String) },
);

interface Planned {
  route: RouteSpec<unknown>;
  path: string;
  headers: Record<string, string>;
  body?: Sample;
  how: Sample["how"];
}

const HEADER_NAMES = [
  "Authorization",
  "Reactor-API-Version",
  "Reactor-API-Accept-Version",
  "Reactor-WebRTC-Version",
  "Content-Type",
  "Content-Length",
  "Origin",
  "Sec-WebSocket-Protocol",
  "Upgrade",
];

/** A header value must be ByteString-safe: junk is reduced to what HTTP can carry. */
const headerSafe = (value: string) => value.replace(/[^\t\x20-\x7e]/g, "?").trim();

/** What a route needs to be reached at all: its path filled in with working values, and its credential. */
function target(route: RouteSpec<unknown>, overrides: Partial<Record<string, string>> = {}, query = ""): string {
  return `${route.path.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(overrides[name] ?? pathParam(name, route)))}${query}`;
}

const validBody = (route: RouteSpec<unknown>): fc.Arbitrary<Sample | undefined> =>
  route.body ? fitting(route.body.json).map((value) => ({ raw: JSON.stringify(value), how: "generated" }) as Sample) : fc.constant(undefined);

/** The route's body fuzzed (generated, mutated, spliced, junk): most of the run. */
const bodyPlans = (route: RouteSpec<unknown>): fc.Arbitrary<Planned> =>
  samples(route.body!.json, { validWeight: 6 }).map((body) => ({
    route,
    path: target(route),
    headers: { ...credential(route), "Content-Type": "application/json" },
    body,
    how: body.how,
  }));

/** Its path parameters and query string fuzzed, with a valid body. */
function paramPlans(route: RouteSpec<unknown>): fc.Arbitrary<Planned> {
  const names = [
    ...new Set([
      ...(QUERIES[route.path] ?? []),
      ...((route.parameters ?? []) as { in?: string; name?: string }[]).filter((p) => p.in === "query").map((p) => p.name!),
    ]),
  ];
  const pathNames = [...route.path.matchAll(/:(\w+)/g)].map((match) => match[1]!);
  return fc
    .tuple(
      fc.subarray(pathNames),
      fc.array(fc.tuple(fc.constantFrom(...names, "x", "__proto__"), paramValue), { maxLength: 4 }),
      paramValue,
      validBody(route),
    )
    .map(([fuzzed, query, value, body]) => {
      const overrides = Object.fromEntries(fuzzed.map((name) => [name, value]));
      const search = query.length ? `?${new URLSearchParams(query).toString()}` : "";
      return {
        route,
        path: target(route, overrides, search),
        headers: { ...credential(route), "Content-Type": "application/json" },
        body,
        how: "mutated" as const,
      };
    });
}

/** One header fuzzed (the credential kept or not), with a valid body. */
const headerPlans = (route: RouteSpec<unknown>): fc.Arbitrary<Planned> =>
  fc.tuple(fc.constantFrom(...HEADER_NAMES), paramValue, validBody(route), fc.boolean()).map(([name, value, body, keepCredential]) => ({
    route,
    path: target(route),
    headers: { ...(keepCredential ? credential(route) : {}), "Content-Type": "application/json", [name]: headerSafe(value) },
    body,
    how: "mutated" as const,
  }));

/** Requests over every declared route: bodies for the routes that take one, parameters and headers for all. */
function plans(): fc.Arbitrary<Planned> {
  return fc.oneof(
    { weight: 80, arbitrary: fc.oneof(...routes.filter((route) => route.body).map(bodyPlans)) },
    { weight: 12, arbitrary: fc.oneof(...routes.map(paramPlans)) },
    { weight: 8, arbitrary: fc.oneof(...routes.map(headerPlans)) },
  );
}

/** The request, or undefined when no HTTP client could send it (a header value the Fetch API refuses, say). */
function build(planned: Planned): Request | undefined {
  const method = planned.route.method.toUpperCase();
  const body = planned.body?.raw;
  try {
    return new Request(BASE + planned.path, { method, headers: planned.headers, ...(body !== undefined && method !== "GET" && { body }) });
  } catch {
    return undefined;
  }
}

function send(request: Request, overFetch: boolean): Promise<Response> {
  return overFetch ? exports.default.fetch(request) : Promise.resolve(app.request(request, undefined, bindings));
}

async function check(planned: Planned, response: Response): Promise<void> {
  if (response.webSocket) {
    response.webSocket.accept();
    response.webSocket.close(1000, "fuzz");
    return;
  }
  const text = await response.text();
  if (response.status < 400) return;
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
  } catch {
    code = undefined;
  }
  tally.rejected(code, response.status);
  if (response.status >= 500 && code === "INTERNAL")
    tally.problem(`500 for ${planned.route.method} ${planned.path} ${show(planned.body?.raw ?? "")}`);
  if (code === undefined)
    tally.problem(`${response.status} without an error code for ${planned.route.method} ${planned.path}: ${text.slice(0, 200)}`);
}

describe(`protocol fuzzing of the REST API (seed ${SEED})`, () => {
  const count = Math.round(TOTAL * SHARE);

  it(`${count} generated and mutated requests over ${routes.length} declared routes`, { timeout: 60_000 + count * 10 }, async () => {
    // A few more requests than a batch: those no HTTP client could send are left out.
    const arbitrary = fc.array(plans(), { minLength: Math.ceil(BATCH * 1.1), maxLength: Math.ceil(BATCH * 1.1) });
    await fc.assert(
      fc.asyncProperty(arbitrary, async (planned) => {
        const quota = tally.frames + Math.min(BATCH, count - tally.frames);
        for (const plan of planned) {
          if (tally.frames >= quota) break;
          const request = build(plan);
          if (!request) continue;
          const overFetch = quota - tally.frames > BATCH - OVER_FETCH;
          let response: Response;
          try {
            response = await send(request, overFetch);
          } catch (error) {
            tally.problem(`${plan.route.method} ${plan.path} threw ${String(error)}`);
            continue;
          }
          tally.sent({ raw: plan.body?.raw ?? "", how: plan.how }, overFetch);
          await check(plan, response);
        }
        f.runtimePeer.frames.splice(0); // offers and candidates the valid requests relayed
        await f.runtime.heartbeat(); // the pool's watchdog runs on real time
        expect(tally.problems).toEqual([]);
      }),
      { numRuns: Math.ceil(count / BATCH) + 2, seed: SEED, endOnFailure: true },
    );
    tally.finish();
    expect(tally.frames).toBe(count);
  });

  it("afterwards the fuzzed session works for its client and runtime: offer, answer, ICE, ACTIVE", async () => {
    const { client, sessionId, runtimePeer } = f;
    const transport = `/sessions/${sessionId}/transport/webrtc`;
    const offered = await getJson(client, `${transport}/sdp_params`, { method: "POST", body: JSON.stringify({ sdp_offer: OFFER }) });
    expect(offered.status).toBe(202);
    const connection = offered.body.connection_id as string;
    const offer = await runtimePeer.next((frame) => frame.type === "offer" && `conn_${frame.generation as number}` === connection);
    runtimePeer.send({ type: "answer", generation: offer.generation, sdp: ANSWER });
    await expect.poll(async () => (await getJson(client, `${transport}/sdp_params`)).body.sdp_answer, POLL).toBe(ANSWER);
    const candidate = { candidate: "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host", sdp_mid: "0" };
    expect(
      (
        await getJson(client, `${transport}/connections/${connection}/ice_candidates`, {
          method: "POST",
          body: JSON.stringify({ candidates: [candidate] }),
        })
      ).status,
    ).toBe(202);
    expect(await runtimePeer.next((frame) => frame.type === "ice" && frame.generation === offer.generation)).toMatchObject({ candidate });
    runtimePeer.send({ type: "peer_state", generation: offer.generation, state: "connected" });
    await expect.poll(() => stateOf(client, sessionId), POLL).toBe("ACTIVE");
  });

  it("nothing crashed: no unhandled error was logged", () => {
    expect(consoleErrors.filter((line) => line.includes("unhandled"))).toEqual([]);
  });
});
