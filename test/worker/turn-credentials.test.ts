/**
 * TURN credentials where clients get them: the official client's `ice_servers` route, `POST /v1/turn-credentials`
 * and the native socket's `ice_servers` frame, with the coturn provider configured (REST-API secret mode).
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { errorCode, mintToken, newApiKey } from "./helpers.ts";
import { advanceAccountClock, clientOf, expectRateLimited, freshAccount, SECOND, setLimits } from "./limits-helpers.ts";
import {
  advanceClock,
  clientHeaders,
  createSession,
  freshModel,
  negotiate,
  newClient,
  openSignal,
  ScriptedRuntime,
  sessionStub,
  type ClientAccount,
  type Frame,
} from "./scripted.ts";

const TURN = {
  TURN_SECRET: "worker-test-turn-secret",
  TURN_HOSTS: "turn-eu.example.test,turn-us.example.test:3479:5349",
  STUN_URLS: "stun:stun.example.test:3478",
};
const app = createApp();
const withTurn = (extra: Record<string, string> = {}) => ({ ...env, ...TURN, ...extra }) as Env;
const withoutTurn = (extra: Record<string, string> = {}) => ({ ...env, TURN_SECRET: undefined, TURN_HOSTS: undefined, ...extra }) as Env;

/** base64(HMAC-SHA1(secret, username)), what coturn recomputes (written out here independently of src/turn). */
async function hmac(secret: string, username: string): Promise<string> {
  const bytes = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", bytes.encode(secret), { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  return btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.sign("HMAC", key, bytes.encode(username)))));
}

async function sessionIceServers(client: ClientAccount, bindings: Env) {
  const { session_id } = await createSession(client, freshModel());
  const response = await app.request(`/sessions/${session_id}/transport/webrtc/ice_servers`, { headers: clientHeaders(client) }, bindings);
  return {
    session_id,
    response,
    body: (await response.json()) as { ice_servers: { uris: string[]; credentials?: { username: string; password: string } }[] },
  };
}

describe("GET …/transport/webrtc/ice_servers with coturn", () => {
  it("hands STUN, then each TURN host's UDP, TCP and TLS URIs, with a credential tied to the session", async () => {
    const { session_id, response, body } = await sessionIceServers(await newClient(), withTurn());
    expect(response.status).toBe(200);
    expect(body.ice_servers.map((server) => server.uris)).toEqual([
      ["stun:stun.example.test:3478"],
      [
        "turn:turn-eu.example.test:3478?transport=udp",
        "turn:turn-eu.example.test:3478?transport=tcp",
        "turns:turn-eu.example.test:443?transport=tcp",
      ],
      [
        "turn:turn-us.example.test:3479?transport=udp",
        "turn:turn-us.example.test:3479?transport=tcp",
        "turns:turn-us.example.test:5349?transport=tcp",
      ],
    ]);
    const { username, password } = body.ice_servers[1]!.credentials!;
    expect(username).toMatch(new RegExp(`^\\d+:${session_id}$`));
    expect(password).toBe(await hmac(TURN.TURN_SECRET, username));
    expect(body.ice_servers[0]!.credentials).toBeUndefined();
  });

  it("the credential lasts TURN_TTL_SECONDS (default 1 h) but never past the client's token", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expiryOf = (body: { ice_servers: { credentials?: { username: string } }[] }) =>
      Number(body.ice_servers[1]!.credentials!.username.split(":")[0]);

    const longLived = await sessionIceServers(await newClient(), withTurn());
    expect(expiryOf(longLived.body)).toBeGreaterThanOrEqual(now + 3600);
    expect(expiryOf(longLived.body)).toBeLessThanOrEqual(now + 3600 + 5);

    const short = await sessionIceServers(await newClient(), withTurn({ TURN_TTL_SECONDS: "120" }));
    expect(expiryOf(short.body)).toBeLessThanOrEqual(now + 120 + 5);

    const key = await newApiKey();
    const token = await mintToken(key.key, { expires_after: 600 });
    const capped = await sessionIceServers({ jwt: token.jwt, account: key.account_id }, withTurn());
    expect(expiryOf(capped.body)).toBe(token.expires_at);
  });

  it("without TURN settings it is STUN only, with no credentials", async () => {
    const { body } = await sessionIceServers(await newClient(), withoutTurn({ STUN_URLS: "stun:stun.example.test:3478" }));
    expect(body).toEqual({ ice_servers: [{ uris: ["stun:stun.example.test:3478"] }] });
  });

  it("refuses another account's session (no credential for it)", async () => {
    const owner = await newClient();
    const { session_id } = await createSession(owner, freshModel());
    const response = await app.request(
      `/sessions/${session_id}/transport/webrtc/ice_servers`,
      { headers: clientHeaders(await newClient()) },
      withTurn(),
    );
    expect(response.status).toBe(404);
    expect(await errorCode(response)).toBe("SESSION_NOT_FOUND");
  });
});

describe("POST /v1/turn-credentials", () => {
  const post = (headers: Record<string, string>, bindings = withTurn()) => app.request("/v1/turn-credentials", { method: "POST", headers }, bindings);

  it("returns standard RTCIceServer[] tied to the account, no-store", async () => {
    const client = await newClient();
    const response = await post(clientHeaders(client));
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const body = (await response.json()) as {
      ice_servers: { urls: string[]; username?: string; credential?: string }[];
      expires_at: number;
      provider: string;
    };
    expect(body.provider).toBe("coturn");
    const turn = body.ice_servers[1]!;
    expect(turn.username).toBe(`${body.expires_at}:acct.${client.account}`);
    expect(turn.credential).toBe(await hmac(TURN.TURN_SECRET, turn.username!));
    expect(body.ice_servers[0]).toEqual({ urls: ["stun:stun.example.test:3478"] });
  });

  it("answers STUN only (provider stun) when TURN is not configured", async () => {
    const response = await post(clientHeaders(await newClient()), withoutTurn({ STUN_URLS: "" }));
    expect(await response.json()).toEqual({ ice_servers: [], provider: "stun" });
  });

  it.each([
    ["no token", {}, "TOKEN_MISSING"],
    ["a runtime credential", { Authorization: "Bearer rt_test_runtime_token_0123456789abcdef" }, "RUNTIME_CREDENTIAL_NOT_ACCEPTED"],
  ])("refuses %s", async (_, headers, code) => {
    const response = await post(headers);
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe(code);
  });
});

describe("issuance is rate-limited per account", () => {
  const post = (client: ClientAccount, bindings = withTurn()) =>
    app.request("/v1/turn-credentials", { method: "POST", headers: clientHeaders(client) }, bindings);

  it("past the account's TURN_CREDENTIALS rate: 429 with Retry-After, across both routes, until the minute slides", async () => {
    const account = freshAccount("turn");
    expect((await setLimits(account, { turn_credentials_per_minute: 2 })).status).toBe(200);
    const client = await clientOf(account);
    expect((await post(client)).status).toBe(200);
    expect((await sessionIceServers(client, withTurn())).response.status).toBe(200);
    const retryAfter = await expectRateLimited(await post(client));
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect((await sessionIceServers(client, withTurn())).response.status).toBe(429);
    const other = await clientOf(freshAccount("turn")); // another account is not affected
    expect((await post(other)).status).toBe(200);

    await advanceAccountClock(account, 61 * SECOND);
    expect((await post(client)).status).toBe(200);
  });

  it("STUN-only answers are not counted (no TURN provider configured)", async () => {
    const account = freshAccount("turn");
    await setLimits(account, { turn_credentials_per_minute: 1 });
    const client = await clientOf(account);
    const stunOnly = withoutTurn({ STUN_URLS: "" });
    for (let i = 0; i < 3; i++) expect((await post(client, stunOnly)).status).toBe(200);
  });
});

describe("the native client and the runtime get credentials for their session", () => {
  // The worker project's bindings configure coturn-style TURN (vitest.config.ts).
  type Server = { urls: string[]; username?: string; credential?: string };
  const turnOf = (frame: Frame) => (frame.ice_servers as Server[]).find((server) => server.username !== undefined)!;
  const expiryOf = (server: Server) => Number(server.username!.split(":")[0]);

  it("the runtime's session frame carries a TURN credential tied to the session", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "rt-turn", 1).connect();
    const { session_id } = await createSession(await newClient(), model);
    const { peer } = await runtime.acceptAssignment();
    const turn = turnOf(peer.session!);
    expect(turn.urls).toEqual([
      "turn:turn.worker.test:3478?transport=udp",
      "turn:turn.worker.test:3478?transport=tcp",
      "turns:turn.worker.test:443?transport=tcp",
    ]);
    expect(turn.username).toMatch(new RegExp(`^\\d+:${session_id}$`));
    expect(turn.credential).toBe(await hmac(env.TURN_SECRET!, turn.username!));
    await runtime.crash();
  });

  it("the native socket gets one on assignment, bounded by the client's token", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "rt-turn-native", 1).connect();
    const key = await newApiKey();
    const token = await mintToken(key.key, { expires_after: 900 });
    const client = { jwt: token.jwt, account: key.account_id };
    const { session_id } = await createSession(client, model);
    const signal = await openSignal(client, session_id); // connected before the GPU comes: pushed on assignment
    await runtime.acceptAssignment();
    const frame = await signal.next("ice_servers");
    const turn = turnOf(frame);
    expect(turn.username).toBe(`${token.expires_at}:${session_id}`);
    expect(frame.expires_at).toBe(token.expires_at);
    signal.close();
    await runtime.crash();
  });

  it("fresh credentials are pushed before the ones the client has expire", async () => {
    const model = freshModel();
    const account = freshAccount("turn");
    await setLimits(account, { max_session_seconds: 4 * 3600 }); // outlive a 1 h credential
    const client = await clientOf(account, { expires_after: 6 * 3600 });
    const runtime = await new ScriptedRuntime(model, "rt-turn-refresh", 1).connect();
    const { session_id } = await createSession(client, model);
    const { peer: runtimePeer } = await runtime.acceptAssignment();
    const signal = await openSignal(client, session_id);
    const first = await signal.next("ice_servers");
    await negotiate(signal, runtimePeer);

    // TURN_TTL_SECONDS is 1 h: the refresh is due at 80 % of it.
    await advanceClock(sessionStub(session_id), 2880 * SECOND + 1000);
    expect(await runDurableObjectAlarm(sessionStub(session_id))).toBe(true);
    const second = await signal.next("ice_servers");
    expect(expiryOf(turnOf(second))).toBeGreaterThanOrEqual(expiryOf(turnOf(first)) + 2880);
    expect(turnOf(second).credential).toBe(await hmac(env.TURN_SECRET!, turnOf(second).username!));
    signal.close();
    await runtime.crash();
  });
});
