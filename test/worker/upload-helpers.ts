/** Uploads inside workerd: create them over REST, PUT their bytes, and look at what R2 holds. */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { sessionUploadsPrefix } from "../../src/uploads/store.ts";
import { createSession, freshModel, getJson, newClient, sessionStub, type ClientAccount } from "./scripted.ts";

export interface CreatedUpload {
  presigned_id: string;
  presigned_url: string;
  path: string;
  expires_at: number;
}

export const PNG = "image/png";

/** `n` bytes of a repeating, position-dependent pattern (so a shifted or truncated copy differs). */
export function pattern(n: number, seed = 7): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

/** A session of a fresh client, WAITING on a model nobody serves (enough to upload to). */
export async function uploadSession(client?: ClientAccount): Promise<{ client: ClientAccount; sessionId: string }> {
  client ??= await newClient();
  const { session_id: sessionId } = await createSession(client, freshModel("uploads"));
  return { client, sessionId };
}

export function createUploadRaw(client: ClientAccount, sessionId: string, body: unknown) {
  return getJson(client, `/sessions/${sessionId}/uploads`, { method: "POST", body: JSON.stringify(body) });
}

export async function createUpload(
  client: ClientAccount,
  sessionId: string,
  file: { name?: string; size?: number; mime_type?: string } = {},
): Promise<CreatedUpload> {
  const { status, body } = await createUploadRaw(client, sessionId, { name: "photo.png", size: 64, mime_type: PNG, ...file });
  if (status !== 200) throw new Error(`create upload failed: ${status} ${JSON.stringify(body)}`);
  return body as unknown as CreatedUpload;
}

/** PUTs `body` to a presigned URL. Content-Length defaults to the body's length (a string "none" leaves it out). */
export function put(
  url: string,
  body: Uint8Array | ReadableStream<Uint8Array> | null,
  headers: { length?: number | string | "none"; type?: string | null } = {},
): Promise<Response> {
  const { length = body instanceof Uint8Array ? body.byteLength : "none", type = PNG } = headers;
  const sent = new Headers();
  if (length !== "none") sent.set("Content-Length", String(length));
  if (type !== null) sent.set("Content-Type", type);
  return exports.default.fetch(new Request(url, { method: "PUT", body, headers: sent, duplex: "half" } as RequestInit));
}

/** A created upload's bytes, PUT: the upload is complete. */
export async function completeUpload(client: ClientAccount, sessionId: string, bytes: Uint8Array, file: { name?: string; mime_type?: string } = {}) {
  const upload = await createUpload(client, sessionId, { ...file, size: bytes.byteLength });
  const response = await put(upload.presigned_url, bytes, { type: file.mime_type ?? PNG });
  expect(response.status, await response.clone().text()).toBe(200);
  return upload;
}

/** The keys R2 holds for a session's uploads. */
export async function storedKeys(sessionId: string): Promise<string[]> {
  const listed = await env.UPLOADS.list({ prefix: sessionUploadsPrefix(sessionId) });
  return listed.objects.map((object) => object.key);
}

export async function storedBytes(key: string): Promise<Uint8Array | null> {
  const object = await env.UPLOADS.get(key);
  return object ? new Uint8Array(await object.arrayBuffer()) : null;
}

export async function errorOf(response: Response): Promise<{ status: number; code: string | undefined; message: string | undefined }> {
  const body = (await response.json()) as { error?: { code?: string; message?: string } };
  return { status: response.status, code: body.error?.code, message: body.error?.message };
}

/** The upload's state in its session's SQLite (durable-objects/session/upload-log.ts), read without a PUT. */
export function uploadState(sessionId: string, uploadId: string): Promise<string | undefined> {
  return runInDurableObject(
    sessionStub(sessionId),
    (_relay, state) => state.storage.sql.exec<{ state: string }>("SELECT state FROM uploads WHERE id = ?", uploadId).toArray()[0]?.state,
  );
}

/**
 * Waits until a PUT in flight holds the upload's claim. Probing with PUTs instead would race the PUT in flight: on a
 * loaded machine a probe can reach the session first, take the claim itself, and the PUT under test is refused.
 */
export async function claimed(sessionId: string, uploadId: string): Promise<void> {
  await expect.poll(() => uploadState(sessionId, uploadId)).toBe("uploading");
}

/** A stream whose chunks the test pushes one by one, and can end or break. */
export function controlledStream() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
  });
  return {
    stream,
    push: (chunk: Uint8Array) => controller.enqueue(chunk),
    end: () => controller.close(),
    break: (reason = "connection lost") => controller.error(new Error(reason)),
  };
}
