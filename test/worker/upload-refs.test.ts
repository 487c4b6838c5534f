/**
 * What refers to an upload, inside workerd: a native client's command with an `uploads` section (checked by the
 * session's object before it is relayed), the runtime reading the bytes back (only the session's assigned runtime,
 * only this session's complete uploads), and the files' deletion when the session ends, whichever way it ends.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call } from "./helpers.ts";
import {
  activeNativeSession,
  advanceClock,
  command,
  commandSeqs,
  commandStatus,
  createSession,
  freshModel,
  getJson,
  newClient,
  RUNTIME_TOKEN,
  ScriptedRuntime,
  sessionStub,
  stateOf,
  type ClientAccount,
  type Frame,
} from "./scripted.ts";
import { completeUpload, createUpload, errorOf, pattern, PNG, put, storedKeys, type CreatedUpload } from "./upload-helpers.ts";

const fileRef = (upload: CreatedUpload, facts: { name?: string; mime_type?: string; size: number }) => ({
  upload_id: upload.presigned_id,
  name: facts.name ?? "photo.png",
  mime_type: facts.mime_type ?? PNG,
  size: facts.size,
});

const withFile = (seq: number, ref: unknown) => ({ type: "command", seq, command: { type: "set_image", data: {}, uploads: { image: ref } } });

/** GET of an upload's bytes as a runtime: `runtimeId` names the caller, `token` its credential. */
function readAsRuntime(sessionId: string, uploadId: string, runtimeId: string, token = RUNTIME_TOKEN): Promise<Response> {
  return call(`/v1/runtime/sessions/${sessionId}/uploads/${uploadId}?runtime_id=${encodeURIComponent(runtimeId)}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
}

async function activeSession() {
  const model = freshModel("files");
  const runtime = await new ScriptedRuntime(model, `gpu-${crypto.randomUUID().slice(0, 8)}`, 2).connect();
  const session = await activeNativeSession(model, runtime);
  await session.signal.sync();
  return { model, runtime, ...session };
}

describe("a native client's command with file references", () => {
  it("is relayed with its uploads section when every reference is a complete upload of this session", async () => {
    const { client, sessionId, signal, runtimePeer } = await activeSession();
    const upload = await completeUpload(client, sessionId, pattern(300));
    const ref = fileRef(upload, { size: 300 });
    signal.send(withFile(1, ref));
    const relayed = await runtimePeer.next("command");
    expect(relayed).toEqual({ type: "command", seq: 1, command: { type: "set_image", data: {}, uploads: { image: ref } } });
    expect(await signal.next(commandStatus(1, "delivered"))).toMatchObject({ seq: 1 });
  });

  it("is refused, never relayed, for an upload of another session, an unknown, incomplete or mismatched one", async () => {
    const { client, sessionId, signal, runtimePeer } = await activeSession();
    const otherSession = (await createSession(client, freshModel("files-other"))).session_id;
    const foreign = await completeUpload(client, otherSession, pattern(50));
    const pending = await createUpload(client, sessionId, { size: 50 });
    const mine = await completeUpload(client, sessionId, pattern(50));
    const cases: [ref: unknown, code: string][] = [
      [fileRef(foreign, { size: 50 }), "UPLOAD_NOT_FOUND"],
      [{ upload_id: "upl_AAAAAAAAAAAAAAAAAAAAAA", name: "x.png", mime_type: PNG, size: 50 }, "UPLOAD_NOT_FOUND"],
      [{ upload_id: "not-an-id", name: "x.png", mime_type: PNG, size: 50 }, "UPLOAD_NOT_FOUND"],
      [fileRef(pending, { size: 50 }), "UPLOAD_NOT_COMPLETE"],
      [fileRef(mine, { size: 51 }), "UPLOAD_REF_MISMATCH"],
      [fileRef(mine, { size: 50, name: "other.png" }), "UPLOAD_REF_MISMATCH"],
      [fileRef(mine, { size: 50, mime_type: "image/jpeg" }), "UPLOAD_REF_MISMATCH"],
    ];
    let seq = 0;
    for (const [ref, code] of cases) {
      signal.send(withFile(++seq, ref));
      expect(await signal.next(commandStatus(seq, "dropped"))).toEqual({ type: "command_status", seq, state: "dropped", error: code });
      expect(await signal.next((frame: Frame) => frame.type === "error" && (frame.ref as { seq?: number })?.seq === seq)).toMatchObject({
        code,
        message: expect.stringContaining("uploads.image"),
      });
    }
    // Each refused command used up its seq; the next one is relayed, and is the first command the runtime sees.
    signal.send(command(++seq));
    expect(commandSeqs(await runtimePeer.takeUntil((frame) => frame.type === "command"))).toEqual([seq]);
    // A refused seq sent again is a replay, not a second chance.
    signal.send(withFile(1, fileRef(mine, { size: 50 })));
    expect(await signal.next("error")).toMatchObject({ code: "COMMAND_REPLAYED" });
    const events = (await getJson(client, `/v1/sessions/${sessionId}/events`)).body.events as { type: string }[];
    expect(events.filter((event) => event.type === "command_refused")).toHaveLength(cases.length);
  });
});

describe("the runtime reading an upload", () => {
  it("streams the bytes with the upload's facts to the session's assigned runtime", async () => {
    const { client, sessionId, runtime } = await activeSession();
    const bytes = pattern(4321);
    const upload = await completeUpload(client, sessionId, bytes, { name: "naïve photo.png" });
    const response = await readAsRuntime(sessionId, upload.presigned_id, runtime.id);
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toBe(PNG);
    expect(decodeURIComponent(response.headers.get("Reactor-Upload-Name")!)).toBe("naïve photo.png");
    expect(response.headers.get("Reactor-Upload-Type")).toBe(PNG);
    expect(response.headers.get("Reactor-Upload-Size")).toBe("4321");
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes);
  });

  it("is refused to other runtimes, to clients, for other sessions' uploads and for incomplete ones", async () => {
    const { client, sessionId, runtime } = await activeSession();
    const upload = await completeUpload(client, sessionId, pattern(10));
    const pending = await createUpload(client, sessionId, { size: 10 });
    const otherSession = (await createSession(client, freshModel("files-other"))).session_id;
    const foreign = await completeUpload(client, otherSession, pattern(10));

    expect(await errorOf(await readAsRuntime(sessionId, upload.presigned_id, "gpu-someone-else"))).toMatchObject({
      status: 403,
      code: "RUNTIME_NOT_ASSIGNED",
    });
    expect(await errorOf(await readAsRuntime(sessionId, upload.presigned_id, runtime.id, client.jwt))).toMatchObject({
      status: 401,
      code: "RUNTIME_CREDENTIAL_INVALID",
    });
    expect(await errorOf(await readAsRuntime(sessionId, upload.presigned_id, runtime.id, "rt_wrong_token_0123456789abcdef"))).toMatchObject({
      status: 401,
      code: "RUNTIME_CREDENTIAL_INVALID",
    });
    expect(await errorOf(await readAsRuntime(sessionId, foreign.presigned_id, runtime.id))).toMatchObject({ status: 404, code: "UPLOAD_NOT_FOUND" });
    expect(await errorOf(await readAsRuntime(sessionId, "upl_nope", runtime.id))).toMatchObject({ status: 404, code: "UPLOAD_NOT_FOUND" });
    expect(await errorOf(await readAsRuntime(sessionId, pending.presigned_id, runtime.id))).toMatchObject({
      status: 409,
      code: "UPLOAD_NOT_COMPLETE",
    });
    expect(await errorOf(await readAsRuntime("ses_AAAAAAAAAAAAAAAAAAAAAA", upload.presigned_id, runtime.id))).toMatchObject({
      status: 404,
      code: "SESSION_NOT_FOUND",
    });
    const missingId = await call(`/v1/runtime/sessions/${sessionId}/uploads/${upload.presigned_id}`, {
      headers: { Authorization: `Bearer ${RUNTIME_TOKEN}` },
    });
    expect(await errorOf(missingId)).toMatchObject({ status: 400, code: "INVALID_REQUEST" });
  });

  it("has no client-facing route: a client token cannot read an upload anywhere", async () => {
    const { client, sessionId } = await activeSession();
    const upload = await completeUpload(client, sessionId, pattern(10));
    for (const path of [
      `/uploads/${upload.presigned_id}`,
      `/sessions/${sessionId}/uploads/${upload.presigned_id}`,
      `/sessions/${sessionId}/uploads`,
    ]) {
      const response = await call(path, { headers: { Authorization: `Bearer ${client.jwt}` } });
      expect([404, 405], path).toContain(response.status);
      expect(response.headers.get("Content-Type"), path).toContain("application/json");
    }
    expect((await call(upload.presigned_url)).status).toBe(404); // GET on the presigned URL reads nothing
  });
});

describe("when the session ends, its files are deleted", () => {
  /** A session with two complete uploads and one pending; returns what the checks need. */
  async function sessionWithFiles(model: string, client: ClientAccount, sessionId: string) {
    const first = await completeUpload(client, sessionId, pattern(100, 1));
    const second = await completeUpload(client, sessionId, pattern(200, 2), { name: "b.png" });
    const pending = await createUpload(client, sessionId, { size: 10 });
    expect((await storedKeys(sessionId)).sort()).toEqual([first.path, second.path].sort());
    return { model, first, second, pending };
  }

  async function expectDeleted(sessionId: string, runtimeId: string, files: { first: CreatedUpload; pending: CreatedUpload }) {
    expect(await storedKeys(sessionId)).toEqual([]);
    expect(await errorOf(await readAsRuntime(sessionId, files.first.presigned_id, runtimeId))).toMatchObject({ status: 409, code: "SESSION_ENDED" });
    expect(await errorOf(await put(files.pending.presigned_url, pattern(10)))).toMatchObject({ status: 409, code: "SESSION_ENDED" });
  }

  it("closed by the client (DELETE)", async () => {
    const { model, client, sessionId, runtime } = await activeSession();
    const files = await sessionWithFiles(model, client, sessionId);
    expect((await getJson(client, `/sessions/${sessionId}`, { method: "DELETE" })).status).toBe(200);
    await expectDeleted(sessionId, runtime.id, files);
    const events = (await getJson(client, `/v1/sessions/${sessionId}/events`)).body.events as { type: string; detail?: unknown }[];
    expect(events.find((event) => event.type === "uploads_deleted")).toMatchObject({ detail: { objects: 2 } });
  });

  it("released by the runtime (INACTIVE)", async () => {
    const { model, client, sessionId, runtime, runtimePeer } = await activeSession();
    const files = await sessionWithFiles(model, client, sessionId);
    runtimePeer.send({ type: "release", reason: "model crashed" });
    await expect.poll(() => stateOf(client, sessionId)).toBe("INACTIVE");
    await expect.poll(() => storedKeys(sessionId)).toEqual([]);
    await expectDeleted(sessionId, runtime.id, files);
  });

  it("ended by a deadline alarm (no GPU in time) — uploads made while it waited", async () => {
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, freshModel("nobody-serves"));
    const files = await sessionWithFiles("", client, sessionId);
    await advanceClock(sessionStub(sessionId), 601_000);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await stateOf(client, sessionId)).toBe("INACTIVE");
    expect(await storedKeys(sessionId)).toEqual([]);
    expect(await errorOf(await put(files.pending.presigned_url, pattern(10)))).toMatchObject({ status: 409, code: "SESSION_ENDED" });
  });

  it("retries a deletion that failed by alarm, until R2 takes it", async () => {
    const client = await newClient();
    const { session_id: sessionId } = await createSession(client, freshModel("files-retry"));
    const upload = await completeUpload(client, sessionId, pattern(10));
    // R2 refuses for this object instance only (an eviction brings back the real binding).
    const failing = new Proxy(env.UPLOADS, {
      get: (bucket, key) => (key === "list" ? () => Promise.reject(new Error("R2 is down")) : Reflect.get(bucket, key)),
    });
    await runInDurableObject(sessionStub(sessionId), (instance: object) => void Object.assign(instance, { env: { ...env, UPLOADS: failing } }));

    expect((await getJson(client, `/sessions/${sessionId}`, { method: "DELETE" })).status).toBe(200);
    expect(await storedKeys(sessionId)).toEqual([upload.path]); // not deleted yet: the deletion failed
    await advanceClock(sessionStub(sessionId), 2_000);
    await runDurableObjectAlarm(sessionStub(sessionId));
    expect(await storedKeys(sessionId)).toEqual([]);
    const events = (await getJson(client, `/v1/sessions/${sessionId}/events`)).body.events as { type: string; detail?: unknown }[];
    expect(events.filter((event) => event.type === "uploads_deleted")).toEqual([expect.objectContaining({ detail: { objects: 1 } })]);
  });

  it("leaves other sessions' files alone", async () => {
    const { client, sessionId } = await activeSession();
    const other = (await createSession(client, freshModel("files-other"))).session_id;
    const kept = await completeUpload(client, other, pattern(10));
    await completeUpload(client, sessionId, pattern(10));
    expect((await getJson(client, `/sessions/${sessionId}`, { method: "DELETE" })).status).toBe(200);
    expect(await storedKeys(sessionId)).toEqual([]);
    expect(await storedKeys(other)).toEqual([kept.path]);
  });
});
