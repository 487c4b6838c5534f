/**
 * Bugs the security suite found (attack table, fuzzing), each pinned by the smallest test that showed it:
 *
 *   1. JSON nested a few thousand levels deep in a pass-through value (`extra_args`, a command's or a message's
 *      `data`, a capability's schema) parsed fine but overflowed the stack of the serializers downstream: 500
 *      INTERNAL on POST /sessions after the account slot was taken, and a session left half-created in its pool.
 *      Now refused by the schema (MAX_JSON_DEPTH).
 *   2. A client's `ack` for more messages than the gateway ever sent was believed whenever the session object had
 *      not yet accepted a message since it started: the runtime's next messages were then dropped as duplicates and
 *      the runtime told to forget them. Now bounded, except on a socket an earlier instance sent messages from memory.
 *   3. A well-formed but unknown session id left an empty SQLite database behind in the object it named (its tables):
 *      guessing ids cost storage. Now such an object keeps nothing (test/worker/attack-table.test.ts checks every
 *      guessed id). Browsers on origins outside CORS_ALLOWED_ORIGINS are refused outright (ORIGIN_NOT_ALLOWED),
 *      also where no preflight protects (WebSocket upgrades): same file.
 *   4. After a redeploy (objects aborted with their sockets), a session whose runtime came back but whose client did
 *      not stayed ACTIVE — billed, with no grace — until its maximum length: its record still named the dead client
 *      socket. It now asks for the live one (test/worker/fault-injection.test.ts, "after a redeploy, only one side
 *      comes back").
 */
import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH, json, parse } from "../../protocol/schema.ts";
import { call, errorCode } from "./helpers.ts";
import { accountSlots, poolStore } from "./invariants.ts";
import { clientOf, freshAccount } from "./limits-helpers.ts";
import {
  activeNativeSession,
  advanceClock,
  clientHeaders,
  command,
  commandStatus,
  freshModel,
  isStatus,
  negotiate,
  openSignal,
  ScriptedRuntime,
  sessionStub,
  upgrade,
  RUNTIME_TOKEN,
  type Frame,
} from "./scripted.ts";

const nested = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

describe("1. deeply nested JSON", () => {
  it(`json() takes ${MAX_JSON_DEPTH} levels and refuses one more, however deep the value (checked without recursion)`, () => {
    expect(parse(json(), JSON.parse(nested(MAX_JSON_DEPTH))).ok).toBe(true);
    expect(parse(json(), JSON.parse(nested(MAX_JSON_DEPTH + 1))).ok).toBe(false);
    expect(parse(json(), JSON.parse(nested(200_000))).ok).toBe(false);
    expect(parse(json(), { a: [{ b: JSON.parse(nested(MAX_JSON_DEPTH - 3)) }] }).ok).toBe(true);
  });

  it("POST /sessions with extra_args 5,000 levels deep: 400 INVALID_REQUEST, no slot taken, nothing queued", async () => {
    const client = await clientOf(freshAccount("deep"));
    const model = freshModel("deep");
    const response = await call("/sessions", {
      method: "POST",
      headers: clientHeaders(client),
      body: `{"model":{"name":"${model}"},"extra_args":{"deep":${nested(5000)}}}`,
    });
    expect(response.status).toBe(400);
    expect(await errorCode(response)).toBe("INVALID_REQUEST");
    expect(await accountSlots(client.account)).toEqual([]);
    expect((await poolStore(model)).queue).toEqual([]);
  });

  it("a command's data, a model message's data, a capability's schema: FRAME_INVALID, and everything goes on", async () => {
    const model = freshModel("deep");
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.send(`{"type":"command","seq":1,"command":{"type":"set_prompt","data":${nested(5000)}}}`);
    expect(await signal.next("error")).toMatchObject({ code: "FRAME_INVALID", message: expect.stringContaining("nest deeper") });
    runtimePeer.send(`{"type":"message","seq":1,"scope":"application","data":${nested(5000)}}`);
    expect(await runtimePeer.next("error")).toMatchObject({ code: "FRAME_INVALID" });
    runtime.control.send(`{"type":"capacity","slots":1,"x":${nested(5000)}}`); // unknown fields are dropped unread…
    runtime.control.send(
      JSON.stringify({
        type: "register",
        runtime_id: "gpu-x",
        model: { name: model },
        slots: 1,
        capabilities: { protocol_version: "1", tracks: [], commands: [{ name: "c", description: "", schema: JSON.parse(nested(1000)) }] },
      }),
    );
    expect(await runtime.control.next("error")).toMatchObject({ code: "FRAME_INVALID" }); // …a declared one is checked

    signal.send(command(1));
    await runtimePeer.next("command");
    runtimePeer.send({ type: "command_ack", seq: 1 });
    await signal.next(commandStatus(1, "acknowledged"));
    runtimePeer.send({ type: "message", seq: 1, scope: "application", data: { ok: true } });
    expect(await signal.next("message")).toMatchObject({ seq: 1, data: { ok: true } });
  });
});

describe("2. a client acknowledging messages it was never sent", () => {
  it("on a fresh session: the ack is bounded, the runtime is told nothing it did not send, and its messages arrive", async () => {
    const model = freshModel("ack");
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.send({ type: "ack", message_seq: 1_000_000 });
    signal.send(command(1)); // a record write, which carries any new safe point to the runtime
    const frames = await runtimePeer.takeUntil("command");
    expect(frames.filter((frame) => frame.type === "message_ack")).toEqual([]);
    for (let seq = 1; seq <= 3; seq++) runtimePeer.send({ type: "message", seq, scope: "application", data: { seq } });
    const delivered: Frame[] = [];
    for (let seq = 1; seq <= 3; seq++) delivered.push(await signal.next("message"));
    expect(delivered.map((frame) => frame.seq)).toEqual([1, 2, 3]);
  });

  it("after an eviction, on a socket that was never sent messages from memory: bounded too", async () => {
    const model = freshModel("ack");
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    signal.close(4001, "away");
    runtimePeer.send({ type: "message", seq: 1, scope: "application", data: "stored while away" });
    await runtimePeer.next((frame) => frame.type === "message_ack" && frame.seq === 1);
    await advanceClock(sessionStub(sessionId), 1000); // evicts the object too
    const back = await openSignal(client, sessionId);
    expect(await back.next("message")).toMatchObject({ seq: 1 });
    await back.next(isStatus("ACTIVE"));
    back.send({ type: "ack", message_seq: 1_000_000 });
    runtimePeer.send({ type: "message", seq: 2, scope: "application", data: "after the ack" });
    expect(await back.next("message")).toMatchObject({ seq: 2, data: "after the ack" });
  });
});

describe("3. guessed session ids and foreign origins (details in attack-table.test.ts)", () => {
  it("the runtime socket of a guessed id is refused 404 and that object keeps nothing", async () => {
    const guess = `ses_${"Z".repeat(22)}`;
    const { response } = await upgrade(`/v1/runtime/sessions/${guess}?runtime_id=gpu-1`, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
    expect(response.status).toBe(404);
    const { storesNothing } = await import("./invariants.ts");
    expect(await storesNothing(guess)).toBe(true);
  });

  it("a negotiation still works after all that (sanity)", async () => {
    const model = freshModel("sanity");
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await clientOf(freshAccount("sanity"));
    const { session_id } = await (
      await call("/sessions", { method: "POST", headers: clientHeaders(client), body: JSON.stringify({ model: { name: model } }) })
    ).json<{ session_id: string }>();
    const { peer } = await runtime.acceptAssignment();
    const signal = await openSignal(client, session_id);
    await negotiate(signal, peer);
  });
});
