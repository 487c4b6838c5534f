/**
 * `extra_args` travel to the runtime inside the `session` frame, so they are bounded well under the frame limit
 * (LIMITS.extraArgsBytes, 64 KiB of JSON): larger ones are refused at creation (413 EXTRA_ARGS_TOO_LARGE), and
 * every accepted size reaches the runtime in a frame it takes. A runtime that still cannot take a frame says so
 * (`frame_error`) and the gateway ends the session with that reason instead of leaving it ACTIVE and billed.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../protocol/common.ts";
import { BASE } from "./helpers.ts";
import { activeNativeSession, clientHeaders, freshModel, getJson, isStatus, newClient, poolSnapshot, ScriptedRuntime } from "./scripted.ts";

async function create(client: Awaited<ReturnType<typeof newClient>>, model: string, extraArgs: unknown) {
  const response = await exports.default.fetch(
    new Request(`${BASE}/sessions`, {
      method: "POST",
      headers: clientHeaders(client),
      body: JSON.stringify({ model: { name: model }, extra_args: extraArgs }),
    }),
  );
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("extra_args are bounded so the session frame always fits", () => {
  it("over 64 KiB of JSON → 413 EXTRA_ARGS_TOO_LARGE, nothing created; just under → the runtime gets them in its session frame", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const client = await newClient();
    // 262 KB: the size that used to be accepted and then stalled the session.
    const tooLarge = await create(client, model, { prompt: "x".repeat(262_000) });
    expect(tooLarge).toMatchObject({ status: 413, body: { error: { code: "EXTRA_ARGS_TOO_LARGE" } } });
    // Multi-byte text is counted in UTF-8 bytes, not characters: 30,000 × "é" is 60,000 bytes… plus 10,000 × "€" (30,000).
    const multiByte = await create(client, model, { a: "é".repeat(30_000), b: "€".repeat(10_000) });
    expect(multiByte).toMatchObject({ status: 413, body: { error: { code: "EXTRA_ARGS_TOO_LARGE" } } });
    expect((await poolSnapshot(model)).queue_length).toBe(0);

    const fits = { prompt: "y".repeat(LIMITS.extraArgsBytes - 20) };
    expect(JSON.stringify(fits).length).toBeLessThanOrEqual(LIMITS.extraArgsBytes);
    const created = await create(client, model, fits);
    expect(created.status).toBe(200);
    const { peer } = await runtime.acceptAssignment();
    expect(peer.session).toMatchObject({ type: "session", extra_args: fits });
  });

  it("a runtime's frame_error ends the session INACTIVE with the code as its reason (never left ACTIVE)", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    runtimePeer.send({ type: "frame_error", code: "FRAME_TOO_LARGE", message: "Frames are limited to 262144 bytes.", frame_type: "session" });
    expect(await signal.next(isStatus("INACTIVE"))).toMatchObject({ reason: "runtime_frame_error: FRAME_TOO_LARGE (session)" });
    expect(await runtimePeer.next("end")).toMatchObject({ reason: "runtime_frame_error: FRAME_TOO_LARGE (session)" });
    const events = (await getJson(client, `/v1/sessions/${sessionId}/events`)).body.events as { type: string; detail?: unknown }[];
    expect(events.find((event) => event.type === "runtime_frame_error")).toMatchObject({
      detail: { code: "FRAME_TOO_LARGE", frame_type: "session" },
    });
  });
});
