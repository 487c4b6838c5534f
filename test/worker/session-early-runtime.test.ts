/**
 * The pool tells a runtime of the slot it hands an arriving session before its answer to that session's `enqueue`
 * is back, so the runtime's session socket can reach the session first. The session holds the socket until the
 * answer is applied, then takes it as its runtime: the socket is not refused (RUNTIME_NOT_ASSIGNED) or lost, and the
 * slot is assigned once. The answer is held back for real (faults.ts's holdEnqueueAnswers) to force that order.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { randomId } from "../../lib/encoding.ts";
import type { SessionRelay } from "../../durable-objects/session/session-relay.ts";
import { holdEnqueueAnswers } from "./faults.ts";
import {
  freshModel,
  getJson,
  negotiate,
  newClient,
  openSignal,
  poolSnapshot,
  registerModel,
  ScriptedRuntime,
  type RuntimeSessionPeer,
  sessionStub,
  stateOf,
  type Frame,
} from "./scripted.ts";

/** How long the runtime's socket must stay unanswered while the pool's answer is held. */
const HELD_MS = 1000;

describe("a runtime socket that arrives before the pool's answer", () => {
  it("waits for the answer, then is the session's runtime: not refused, not lost, assigned once", async () => {
    const model = freshModel();
    await registerModel(model);
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    const sessionId = `ses_${randomId(16)}`;
    const hold = holdEnqueueAnswers(env.MODEL_POOL);
    await runInDurableObject(sessionStub(sessionId), (relay: SessionRelay) => {
      const self = relay as unknown as { env: Env };
      self.env = { ...self.env, MODEL_POOL: hold.binding };
    });

    // What POST /sessions does, on this object; its answer waits for the pool's.
    const creating = sessionStub(sessionId).create({
      sessionId,
      accountId: client.account,
      apiKeyId: "key_early_runtime",
      tokenId: "tok_early_runtime",
      model,
      token: { expiresAt: Math.floor(Date.now() / 1000) + 3600, maxSessions: null },
    });
    // The pool has handed out the slot and told the runtime, which opens its socket while the answer is held.
    const { session_id } = await runtime.control.next<{ type: "assign"; session_id: string }>("assign");
    expect(session_id).toBe(sessionId);
    const opening = runtime.openSession(sessionId).then(
      (peer) => ({ peer }),
      (error: unknown) => ({ error: String(error) }),
    );
    const early = await Promise.race([opening, new Promise((resolve) => setTimeout(() => resolve("still waiting"), HELD_MS))]);
    expect(early).toBe("still waiting");
    expect(hold.answered()).toBe(false);

    hold.release();
    const created = await creating;
    expect(created).toMatchObject({ ok: true, value: { session_id: sessionId } });
    const opened = await opening;
    expect(opened).toHaveProperty("peer");
    const runtimePeer = (opened as { peer: RuntimeSessionPeer }).peer;
    expect(runtimePeer.session).toMatchObject({ type: "session", session_id: sessionId });

    // Assigned once: one slot busy at the pool, one `assign` to the runtime, one assignment in the session's log.
    const snapshot = await poolSnapshot(model);
    expect(snapshot.runtimes).toEqual([expect.objectContaining({ id: "gpu-1", busy: 1 })]);
    expect(snapshot.queue_length).toBe(0);
    expect(runtime.control.frames.filter((frame: Frame) => frame.type === "assign")).toEqual([]);
    const { body } = await getJson(client, `/v1/sessions/${sessionId}/events`);
    const kinds = (body.events as { type: string }[]).map((event) => event.type);
    expect(kinds.filter((kind) => kind === "assigned")).toHaveLength(1);
    expect(kinds.filter((kind) => kind === "runtime_connected")).toHaveLength(1);

    // The socket that came early is the runtime the session runs on: the client negotiates with it to ACTIVE.
    const signal = await openSignal(client, sessionId);
    await negotiate(signal, runtimePeer);
    expect(await stateOf(client, sessionId)).toBe("ACTIVE");
    expect(runtimePeer.closed).toBeNull();
  });
});
