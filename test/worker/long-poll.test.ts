/**
 * LONG_POLL_MS: GET /sessions/{id} and GET sdp_params hold the request until something changes, up to
 * LONG_POLL_MS; 0 means never hold (plain polling, for side-by-side benchmarks). Each test runs one poll with a
 * long hold next to one with 0 and shows that the plain one answers while the held one is still waiting, then
 * that the held one answers as soon as the awaited change happens.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { call } from "./helpers.ts";
import { clientHeaders, createSession, freshModel, newClient, OFFER, ANSWER, ScriptedRuntime, type ClientAccount } from "./scripted.ts";

const app = createApp();
/** Far longer than any test runs: a held poll can only end because something changed. */
const HOLD = "600000";

function poll(client: ClientAccount, path: string, longPollMs: string): Promise<Response> {
  return Promise.resolve(app.request(path, { headers: clientHeaders(client) }, { ...env, LONG_POLL_MS: longPollMs }));
}

/** Which of two pending responses settles first. */
const first = (held: Promise<Response>, plain: Promise<Response>) => Promise.race([held.then(() => "held"), plain.then(() => "plain")]);

const runtimes: ScriptedRuntime[] = [];
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.crash();
});

describe("LONG_POLL_MS=0", () => {
  it("GET /sessions/{id} answers at once while no GPU is assigned", async () => {
    const model = freshModel();
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    const held = poll(client, `/sessions/${session_id}`, HOLD);
    const plain = poll(client, `/sessions/${session_id}`, "0");

    expect(await first(held, plain)).toBe("plain");
    const answered = (await (await plain).json()) as Record<string, unknown>;
    expect(answered).toMatchObject({ session_id, state: "WAITING" });
    expect(answered).not.toHaveProperty("capabilities");

    const runtime = await new ScriptedRuntime(model, "rt-poll", 1).connect();
    runtimes.push(runtime);
    await runtime.acceptAssignment();
    expect(await (await held).json()).toHaveProperty("capabilities"); // the held poll ended with the assignment
  });

  it("GET sdp_params answers 202 at once while the runtime has not answered", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "rt-sdp", 1).connect();
    runtimes.push(runtime);
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    const { peer } = await runtime.acceptAssignment();
    const sdpParams = `/sessions/${session_id}/transport/webrtc/sdp_params`;
    const offered = await call(sdpParams, { method: "POST", headers: clientHeaders(client), body: JSON.stringify({ sdp_offer: OFFER }) });
    expect(offered.status).toBe(202);
    const offer = await peer.next("offer");

    const held = poll(client, sdpParams, HOLD);
    const plain = poll(client, sdpParams, "0");
    expect(await first(held, plain)).toBe("plain");
    expect((await plain).status).toBe(202);

    peer.send({ type: "answer", generation: offer.generation, sdp: ANSWER });
    const answered = await held;
    expect(answered.status).toBe(200);
    expect(await answered.json()).toMatchObject({ sdp_answer: ANSWER });
  });
});
