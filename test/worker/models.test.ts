/**
 * GET /v1/models: the models with a connected runtime, described by their pools (slots, queue), listed from the
 * D1 directory that each pool keeps.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { ModelPool } from "../../durable-objects/pool/model-pool.ts";
import { listModel } from "../../src/models/directory.ts";
import type { ModelSummary } from "../../src/protocol/http.ts";
import { call, errorCode, mintToken, newApiKey } from "./helpers.ts";
import {
  CAPABILITIES,
  RUNTIME_TOKEN,
  createSession,
  freshModel,
  getJson,
  newClient,
  poolSnapshot,
  poolStub,
  ScriptedRuntime,
  type ClientAccount,
} from "./scripted.ts";

const started: ScriptedRuntime[] = [];

async function runtime(model: string, id: string, slots: number): Promise<ScriptedRuntime> {
  const connected = await new ScriptedRuntime(model, id, slots).connect();
  started.push(connected);
  return connected;
}

afterEach(async () => {
  for (const scripted of started.splice(0)) if (!scripted.control.closed) await scripted.crash();
});

async function models(client: ClientAccount): Promise<ModelSummary[]> {
  const { status, body } = await getJson(client, "/v1/models");
  expect(status, JSON.stringify(body)).toBe(200);
  return body.models as ModelSummary[];
}

const directoryRow = (model: string) =>
  env.DB.prepare("SELECT name, listed_at FROM models WHERE name = ?").bind(model).first<{ name: string; listed_at: number }>();

/** Polls the D1 directory until `done` holds for the model's row (the pool writes it after the socket closes). */
async function untilRow(model: string, done: (row: { listed_at: number } | null) => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!done(await directoryRow(model))) {
    if (Date.now() > deadline) throw new Error(`directory row of ${model} never reached the expected state`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("GET /v1/models", () => {
  it("lists nothing while no runtime is connected", async () => {
    expect(await models(await newClient())).toEqual([]);
  });

  it("lists a model once a runtime registers: version, capabilities, runtimes, slots, queue", async () => {
    const model = freshModel("listed");
    await runtime(model, "rt-a", 2);
    expect(await models(await newClient())).toEqual([
      { name: model, version: "1.0.0", capabilities: CAPABILITIES, runtimes: 1, slots: { total: 2, free: 2 }, queue_length: 0 },
    ]);
  });

  it("follows the pool: busy slots, the queue, and a second runtime", async () => {
    const model = freshModel("busy");
    const client = await newClient();
    const first = await runtime(model, "rt-a", 1);
    await createSession(client, model);
    await first.acceptAssignment();
    await createSession(client, model); // no free slot: queued
    expect(await models(client)).toMatchObject([{ name: model, runtimes: 1, slots: { total: 1, free: 0 }, queue_length: 1 }]);

    const second = await runtime(model, "rt-b", 3);
    await second.acceptAssignment(); // the queued session takes one of the new slots
    expect(await models(client)).toMatchObject([{ name: model, runtimes: 2, slots: { total: 4, free: 2 }, queue_length: 0 }]);
  });

  it("drops a model when its last runtime disconnects, and from the directory too", async () => {
    const model = freshModel("leaving");
    const client = await newClient();
    const first = await runtime(model, "rt-a", 1);
    const second = await runtime(model, "rt-b", 1);

    await first.crash();
    expect(await models(client)).toMatchObject([{ name: model, runtimes: 1, slots: { total: 1, free: 1 } }]);
    expect(await directoryRow(model)).not.toBeNull();

    await second.crash();
    expect(await models(client)).toEqual([]);
    await untilRow(model, (row) => row === null);
  });

  it("writes the directory when the first runtime connects and the last leaves, not on heartbeats or capacity", async () => {
    const model = freshModel("writes");
    const first = await runtime(model, "rt-a", 1);
    const listedAt = (await directoryRow(model))!.listed_at; // written before `registered` was sent
    await first.heartbeat();
    first.control.send({ type: "capacity", slots: 4 });
    await runtime(model, "rt-b", 1);
    expect(await models(await newClient())).toMatchObject([{ name: model, runtimes: 2, slots: { total: 5 } }]);
    expect((await directoryRow(model))!.listed_at).toBe(listedAt);
  });

  it("shows only the models a narrowed token may use", async () => {
    const [allowed, other] = [freshModel("allowed"), freshModel("other")];
    await runtime(allowed, "rt-a", 1);
    await runtime(other, "rt-b", 1);
    const { jwt } = await mintToken((await newApiKey()).key, {
      authorization_details: [{ type: "session", resources: { models: { match: [allowed, "not-running"] } } }],
    });
    expect((await models({ jwt, account: "narrowed" })).map((entry) => entry.name)).toEqual([allowed]);
    expect((await models(await newClient())).map((entry) => entry.name).sort()).toEqual([allowed, other].sort());
  });

  it("leaves out a directory row whose pool has no connected runtime", async () => {
    const model = freshModel("stale");
    await listModel(env.DB, model, Date.now());
    expect(await models(await newClient())).toEqual([]);
  });

  it("forgets runtimes whose socket vanished without a close (the pool restarted) and unlists the model", async () => {
    const model = freshModel("vanished");
    // What a pool holds after a restart dropped its sockets without close events: a runtime still marked connected.
    await runInDurableObject(poolStub(model), (_pool: ModelPool, state: DurableObjectState) => {
      state.storage.kv.put("model", model);
      state.storage.kv.put("listed", true);
      state.storage.sql.exec(
        `INSERT INTO runtimes (id, model_version, capabilities, slots, connected, connection, disconnected_at)
         VALUES ('rt-gone', '1.0.0', ?, 2, 1, 99, NULL)`,
        JSON.stringify(CAPABILITIES),
      );
    });
    await listModel(env.DB, model, Date.now());

    expect(await models(await newClient())).toEqual([]);
    expect((await poolSnapshot(model)).runtimes).toEqual([expect.objectContaining({ id: "rt-gone", connected: false })]);
    await untilRow(model, (row) => row === null);
  });

  it.each([
    ["no credential", {}, "TOKEN_MISSING"],
    ["an API key", { "Reactor-API-Key": `rk_${"a".repeat(43)}` }, "API_KEY_SENT_AS_TOKEN"],
    ["a runtime token", { Authorization: `Bearer ${RUNTIME_TOKEN}` }, "RUNTIME_CREDENTIAL_NOT_ACCEPTED"],
    ["a malformed token", { Authorization: "Bearer not-a-jwt" }, "TOKEN_MALFORMED"],
  ])("refuses %s with 401 %s", async (_, headers, code) => {
    const response = await call("/v1/models", { headers });
    expect(response.status).toBe(401);
    expect(await errorCode(response)).toBe(code);
  });
});
