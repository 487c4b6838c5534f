/**
 * A runtime session socket is not the runtime until it says `hello`: frames before it are refused (HELLO_REQUIRED)
 * and not processed, a socket that replaces a working one is a runtime drop (grace runs until its hello), and one
 * that never says hello is closed at a stored deadline (RUNTIME_HELLO_MS), so it cannot hold a session ACTIVE and
 * billed until the maximum length.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CLOSE_NO_HELLO, RUNTIME_HELLO_MS } from "../../durable-objects/session/session-relay.ts";
import {
  activeNativeSession,
  advanceClock,
  command,
  commandStatus,
  createSession,
  freshModel,
  getJson,
  isStatus,
  newClient,
  RUNTIME_TOKEN,
  ScriptedRuntime,
  sessionStub,
  stateOf,
  upgrade,
  type Peer,
} from "./scripted.ts";

/** Opens a session socket for the assigned runtime id and says nothing. */
async function silentSocket(runtimeId: string, sessionId: string): Promise<Peer> {
  const { response, peer } = await upgrade(`/v1/runtime/sessions/${sessionId}?runtime_id=${runtimeId}`, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
  expect(response.status).toBe(101);
  return peer!;
}

describe("runtime session socket before its hello", () => {
  it("a silent socket replacing the working one starts grace at once; its hello resumes and commands flow again", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    const silent = await silentSocket("gpu-1", sessionId);
    expect((await runtimePeer.waitClosed()).code).toBe(4000); // replaced
    const reconnecting = await signal.next(isStatus("RECONNECTING"));
    expect(reconnecting).toMatchObject({ reason: "runtime_disconnected", deadline: expect.any(Number) });
    // A command meanwhile waits (not sent to a socket that is not the runtime yet).
    signal.send(command(1));
    await signal.next(commandStatus(1, "waiting"));
    expect(silent.frames).toEqual([]);

    silent.send({ type: "hello", runtime_id: "gpu-1", command_seq: 0 });
    await silent.next("session");
    await signal.next(isStatus("ACTIVE"));
    expect(await silent.next("command")).toMatchObject({ seq: 1 });
    await signal.next(commandStatus(1, "delivered"));
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
  });

  it("frames before the hello are refused with HELLO_REQUIRED and not processed: a release does not end the session", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);
    const silent = await silentSocket("gpu-1", sessionId);
    await signal.next(isStatus("RECONNECTING"));
    silent.send({ type: "release", reason: "not proven" });
    silent.send({ type: "message", seq: 1, scope: "application", data: {} });
    expect(await silent.next("error")).toMatchObject({ code: "HELLO_REQUIRED", ref: { type: "release" } });
    expect(await silent.next("error")).toMatchObject({ code: "HELLO_REQUIRED", ref: { type: "message" } });
    expect(await stateOf(client, sessionId)).toBe("RECONNECTING");
    expect((await signal.sync()).filter((frame) => frame.type === "message")).toEqual([]);
  });

  it("a socket that never says hello is closed at the hello deadline; the grace then ends the session runtime_lost", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);
    const silent = await silentSocket("gpu-1", sessionId);
    await signal.next(isStatus("RECONNECTING"));

    // Before the deadline the alarm leaves it open.
    await advanceClock(sessionStub(sessionId), RUNTIME_HELLO_MS - 1000);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(silent.closed).toBeNull();
    await advanceClock(sessionStub(sessionId), 2000);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect((await silent.waitClosed()).code).toBe(CLOSE_NO_HELLO);

    await advanceClock(sessionStub(sessionId), 30_000);
    await runDurableObjectAlarm(sessionStub(sessionId));
    await expect.poll(() => stateOf(client, sessionId)).toBe("INACTIVE");
    const events = await getJson(client, `/v1/sessions/${sessionId}/events`);
    const kinds = (events.body.events as { type: string; detail?: { how?: string } }[]).map(
      (event) => `${event.type}${event.detail?.how ? `: ${event.detail.how}` : ""}`,
    );
    expect(kinds).toContain("runtime_dropped: no hello within 10 s");
  });

  it("a silent first socket (never greeted) is closed at the deadline too; the runtime can still connect after", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, model);
    await runtime.control.next("assign");
    const silent = await silentSocket("gpu-1", sessionId);
    await advanceClock(sessionStub(sessionId), RUNTIME_HELLO_MS + 1);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect((await silent.waitClosed()).code).toBe(CLOSE_NO_HELLO);
    const peer = await runtime.openSession(sessionId);
    expect(peer.session).toMatchObject({ type: "session", session_id: sessionId });
    expect(await stateOf(client, sessionId)).toBe("WAITING");
  });
});
