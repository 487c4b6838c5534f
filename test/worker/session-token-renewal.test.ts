/**
 * A signaling socket lives no longer than its token: the session closes it (CLOSE_TOKEN_EXPIRED, 4001) at the
 * token's expiry — by a stored deadline behind the alarm, and on any frame that arrives later — unless the client
 * renewed it in place with a `token` frame, verified exactly like the bearer token (same account, access to the
 * session's model). A refused renewal changes nothing: the socket keeps its current token until that expires.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CLOSE_TOKEN_EXPIRED } from "../../protocol/signaling.ts";
import { mintToken, newApiKey } from "./helpers.ts";
import { activeNativeSession, advanceClock, command, commandStatus, freshModel, ScriptedRuntime, sessionStub, stateOf } from "./scripted.ts";

const SECOND = 1000;

/** An ACTIVE native session whose socket opened with a token living `lifetime` seconds. */
async function sessionWithToken(lifetime: number) {
  const model = freshModel();
  const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
  const key = await newApiKey();
  const token = await mintToken(key.key, { expires_after: lifetime });
  const session = await activeNativeSession(model, runtime, { jwt: token.jwt, account: key.account_id });
  return { ...session, key, token, model };
}

/** The session object's clock (real time plus its test offset). */
const sessionNow = (sessionId: string) =>
  runInDurableObject(
    sessionStub(sessionId),
    (_instance: unknown, state: DurableObjectState) => Date.now() + (state.storage.kv.get<number>("clock_offset_ms") ?? 0),
  );

/** Moves the session's clock to `ms` past the token's expiry and runs its alarm. */
async function passExpiry(sessionId: string, expiresAt: number, ms: number): Promise<void> {
  await advanceClock(sessionStub(sessionId), expiresAt * SECOND - (await sessionNow(sessionId)) + ms);
  await runDurableObjectAlarm(sessionStub(sessionId));
}

describe("token expiry on an open signaling socket", () => {
  it("without renewal: the alarm closes the socket at exp with 4001, and the session starts its grace", async () => {
    const { client, sessionId, signal, token } = await sessionWithToken(120);
    await passExpiry(sessionId, token.expires_at, -5 * SECOND);
    expect(signal.closed).toBeNull(); // not before
    await passExpiry(sessionId, token.expires_at, SECOND);
    expect(await signal.waitClosed()).toEqual({ code: CLOSE_TOKEN_EXPIRED, reason: "token expired" });
    await expect.poll(() => stateOf(client, sessionId)).toBe("RECONNECTING");
  });

  it("a frame after exp (before the alarm ran) is not processed: the socket is closed with 4001", async () => {
    const { sessionId, signal, token, runtimePeer } = await sessionWithToken(120);
    await advanceClock(sessionStub(sessionId), token.expires_at * SECOND - Date.now() + SECOND); // no alarm run
    signal.send(command(1));
    expect((await signal.waitClosed()).code).toBe(CLOSE_TOKEN_EXPIRED);
    expect(runtimePeer.frames.filter((frame) => frame.type === "command")).toEqual([]);
  });

  it("renewed in place: token_accepted with the new expiry; the socket outlives the first token and commands flow", async () => {
    const { sessionId, signal, token, key, runtimePeer } = await sessionWithToken(120);
    const fresh = await mintToken(key.key, { expires_after: 600 }); // within the 20-min maximum length
    signal.send({ type: "token", token: fresh.jwt });
    expect(await signal.next("token_accepted")).toEqual({ type: "token_accepted", expires_at: fresh.expires_at });
    await passExpiry(sessionId, token.expires_at, 10 * SECOND);
    expect(signal.closed).toBeNull();
    signal.send(command(1));
    await signal.next(commandStatus(1, "delivered"));
    expect(await runtimePeer.next("command")).toMatchObject({ seq: 1 });
    // The renewed token's own expiry still closes it.
    await passExpiry(sessionId, fresh.expires_at, SECOND);
    expect((await signal.waitClosed()).code).toBe(CLOSE_TOKEN_EXPIRED);
  });

  it("a bad token, another account's, or one narrowed to another model: an error with its code, the socket unaffected until exp", async () => {
    const { sessionId, signal, token, key, client } = await sessionWithToken(120);
    const other = await newApiKey();
    const othersToken = await mintToken(other.key);
    const narrowed = await mintToken(key.key, {
      authorization_details: [{ type: "session", resources: { models: { match: ["some-other-model"] } } }],
    });
    signal.send({ type: "token", token: "not-a-jwt" });
    expect(await signal.next("error")).toMatchObject({ code: "TOKEN_MALFORMED", ref: { type: "token" } });
    signal.send({ type: "token", token: othersToken.jwt });
    expect(await signal.next("error")).toMatchObject({ code: "TOKEN_NOT_FOR_SESSION", ref: { type: "token" } });
    signal.send({ type: "token", token: narrowed.jwt });
    expect(await signal.next("error")).toMatchObject({ code: "TOKEN_NOT_FOR_SESSION", ref: { type: "token" } });
    signal.send({ type: "token", token: `${token.jwt.slice(0, -4)}AAAA` }); // signature altered
    expect(await signal.next("error")).toMatchObject({ code: "TOKEN_SIGNATURE_INVALID", ref: { type: "token" } });
    // Still open and working on its first token…
    signal.send(command(1));
    await signal.next(commandStatus(1, "delivered"));
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    // …until that one expires.
    await passExpiry(sessionId, token.expires_at, SECOND);
    expect((await signal.waitClosed()).code).toBe(CLOSE_TOKEN_EXPIRED);
  });
});
