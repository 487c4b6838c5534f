/**
 * GET /v1/models: the models with a connected runtime, described by their pools (slots, queue), listed from the
 * D1 directory that each pool keeps. POST /sessions on model names: a name no runtime ever registered is 404
 * MODEL_NOT_FOUND and leaves nothing behind; a known model with no runtime connected queues, saying so.
 */
import { listDurableObjectIds, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import type { ModelPool } from "../../durable-objects/pool/model-pool.ts";
import { listModel } from "../../src/models/directory.ts";
import type { ModelSummary } from "../../protocol/http.ts";
import { call, errorCode, mintToken, newApiKey } from "./helpers.ts";
import { failWrites } from "./faults.ts";
import { accountStore } from "./invariants.ts";
import { clientOf, freshAccount } from "./limits-helpers.ts";
import {
  CAPABILITIES,
  RUNTIME_TOKEN,
  clientHeaders,
  createSession,
  freshModel,
  getJson,
  isStatus,
  newClient,
  openSignal,
  poolSnapshot,
  poolStub,
  registerModel,
  ScriptedRuntime,
  sessionStub,
  advanceClock,
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

type DirectoryRow = { name: string; listed_at: number; connected: number };
const directoryRow = (model: string) =>
  env.DB.prepare("SELECT name, listed_at, connected FROM models WHERE name = ?").bind(model).first<DirectoryRow>();

/** Polls the D1 directory until `done` holds for the model's row (the pool writes it after the socket closes). */
async function untilRow(model: string, done: (row: DirectoryRow | null) => boolean): Promise<void> {
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

  it("drops a model when its last runtime disconnects; the directory keeps it as known, not connected", async () => {
    const model = freshModel("leaving");
    const client = await newClient();
    const first = await runtime(model, "rt-a", 1);
    const second = await runtime(model, "rt-b", 1);

    await first.crash();
    expect(await models(client)).toMatchObject([{ name: model, runtimes: 1, slots: { total: 1, free: 1 } }]);
    expect(await directoryRow(model)).not.toBeNull();

    await second.crash();
    expect(await models(client)).toEqual([]);
    await untilRow(model, (row) => row?.connected === 0);
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
    await untilRow(model, (row) => row?.connected === 0);
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

// ── POST /sessions and the directory ──────────────────────────────────────────────────────────────────────────

function post(client: ClientAccount, model: string): Promise<Response> {
  return call("/sessions", { method: "POST", headers: clientHeaders(client), body: JSON.stringify({ model: { name: model } }) });
}

const hasId = (ids: DurableObjectId[], id: DurableObjectId) => ids.some((candidate) => candidate.equals(id));

/** A model a runtime registered and then left: known, with no runtime connected (the real path, not a row insert). */
async function knownWithoutRuntime(prefix: string): Promise<string> {
  const model = freshModel(prefix);
  await (await new ScriptedRuntime(model, "rt-once", 1).connect()).crash();
  await untilRow(model, (row) => row?.connected === 0);
  return model;
}

describe("POST /sessions on a model no runtime ever registered", () => {
  it("is 404 MODEL_NOT_FOUND naming the known models, and creates no session, pool, directory row or account slot", async () => {
    const known = freshModel("known");
    await registerModel(known);
    const client = await clientOf(freshAccount("unknown"));
    const before = { sessions: await listDurableObjectIds(env.SESSION_RELAY), pools: await listDurableObjectIds(env.MODEL_POOL) };
    const made_up = freshModel("made-up");

    const response = await post(client, made_up);
    expect(response.status).toBe(404);
    const { error } = await response.json<{ error: { code: string; message: string; recoverable: boolean } }>();
    expect(error).toMatchObject({ code: "MODEL_NOT_FOUND", recoverable: false });
    expect(error.message).toContain(`"${made_up}"`);
    expect(error.message).toMatch(/Known models: .*\S/);
    expect(response.headers.get("Retry-After")).toBeNull();

    expect(await directoryRow(made_up)).toBeNull();
    expect(hasId(await listDurableObjectIds(env.MODEL_POOL), env.MODEL_POOL.idFromName(made_up))).toBe(false);
    expect((await listDurableObjectIds(env.MODEL_POOL)).length).toBe(before.pools.length);
    expect((await listDurableObjectIds(env.SESSION_RELAY)).length).toBe(before.sessions.length);
    expect(await accountStore(client.account)).toMatchObject({ slots: [], creations: 0 });
  });

  it("names only the known models a narrowed token may use", async () => {
    const [mine, theirs, unknown] = [freshModel("mine"), freshModel("theirs"), freshModel("unknown")];
    await registerModel(mine);
    await registerModel(theirs);
    const client = await clientOf(freshAccount("narrow"), {
      authorization_details: [{ type: "session", resources: { models: { match: [mine, unknown] } } }],
    });
    const response = await post(client, unknown);
    expect(response.status).toBe(404);
    const { error } = await response.json<{ error: { code: string; message: string } }>();
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toContain(`Known models this token may use: ${mine}.`);
    expect(error.message).not.toContain(theirs);
    // A name outside the token's list is refused before the directory is asked.
    expect(await errorCode(await post(client, theirs))).toBe("MODEL_NOT_ALLOWED");
  });

  it("a model registered since is accepted once the short negative cache has passed", async () => {
    const model = freshModel("late");
    const client = await newClient();
    expect((await post(client, model)).status).toBe(404);
    await registerModel(model);
    await new Promise((resolve) => setTimeout(resolve, 3100)); // UNKNOWN_TTL_MS in src/models/known.ts
    expect((await post(client, model)).status).toBe(200);
  });
});

describe("POST /sessions on a model whose first listing failed", () => {
  it("is refused MODEL_NOT_FOUND while D1 refuses the row (the directory is the truth), and accepted once the pool's alarm lists it", async () => {
    const model = freshModel("unlisted");
    const restore = await failWrites("models", `NEW.name = '${model}'`);
    try {
      await runtime(model, "rt-a", 1); // serving, but not in the directory
      expect(await errorCode(await post(await newClient(), model))).toBe("MODEL_NOT_FOUND");
    } finally {
      await restore();
    }
    await runDurableObjectAlarm(poolStub(model));
    await new Promise((resolve) => setTimeout(resolve, 3100)); // the negative cache (UNKNOWN_TTL_MS)
    expect((await post(await newClient(), model)).status).toBe(200);
  });
});

describe("POST /sessions on a known model with no runtime connected", () => {
  it("queues the session WAITING with reason no_runtime_connected, on POST, GET and the native status", async () => {
    const model = await knownWithoutRuntime("away");
    const client = await newClient();
    const response = await post(client, model);
    expect(response.status).toBe(200);
    const created = await response.json<{ session_id: string; state: string; reason: string; queue_position: number }>();
    expect(created).toMatchObject({ state: "WAITING", reason: "no_runtime_connected", queue_position: 1 });
    expect(created).not.toHaveProperty("capabilities"); // the official client keeps polling: it is waiting
    expect((await getJson(client, `/sessions/${created.session_id}`)).body).toMatchObject({ state: "WAITING", reason: "no_runtime_connected" });
    const signal = await openSignal(client, created.session_id);
    expect(await signal.next(isStatus("WAITING"))).toMatchObject({ reason: "no_runtime_connected" });

    // A runtime connects: the session is assigned at once.
    const back = await runtime(model, "rt-back", 1);
    expect((await back.acceptAssignment()).sessionId).toBe(created.session_id);
    expect((await getJson(client, `/sessions/${created.session_id}`)).body).toMatchObject({
      state: "WAITING",
      reason: "assigned",
      capabilities: CAPABILITIES,
    });
  });

  it("ends INACTIVE no_runtime when the queue wait passes, even while the runtime that left is still in its grace", async () => {
    const model = await knownWithoutRuntime("expired"); // its runtime left just now: the pool keeps it for the grace
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    await advanceClock(sessionStub(session_id), 601 * 1000); // SESSION_QUEUE_WAIT_SECONDS = 600
    await runDurableObjectAlarm(sessionStub(session_id));
    expect((await getJson(client, `/sessions/${session_id}`)).body).toMatchObject({ state: "INACTIVE", reason: "no_runtime" });
  });

  it("says queued while runtimes are connected but busy, and no_runtime_connected once the last one leaves", async () => {
    const model = freshModel("busy-then-gone");
    const client = await newClient();
    const gpu = await runtime(model, "rt-busy", 1);
    await createSession(client, model);
    await gpu.acceptAssignment();
    const { session_id: waiting } = await createSession(client, model);
    expect((await getJson(client, `/sessions/${waiting}/info`)).body.state).toBe("WAITING");
    expect((await getJson(client, `/sessions/${waiting}`)).body).toMatchObject({ state: "WAITING", reason: "queued", queue_position: 1 });

    await gpu.crash();
    await expect.poll(async () => (await getJson(client, `/sessions/${waiting}`)).body.reason, { timeout: 5000 }).toBe("no_runtime_connected");
  });
});
