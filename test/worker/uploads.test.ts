/**
 * Uploads inside workerd, against the real Worker, SessionRelay objects and R2 binding: creating an upload (name,
 * size and type rules, whose session), and its PUT (signature, expiry, single use, exact length and type,
 * streaming). Every refusal is checked for its precise code and for nothing left in R2.
 */
import { exports } from "cloudflare:workers";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { signGrant, signingSecrets, type UploadGrant } from "../../src/uploads/signing.ts";
import { storeExactly, uploadKey } from "../../src/uploads/store.ts";
import { errorCode } from "./helpers.ts";
import { advanceClock, getJson, newClient, sessionStub } from "./scripted.ts";
import {
  claimed,
  completeUpload,
  controlledStream,
  createUpload,
  createUploadRaw,
  errorOf,
  pattern,
  PNG,
  put,
  storedBytes,
  storedKeys,
  uploadSession,
} from "./upload-helpers.ts";

const MIB = 1024 * 1024;

describe("creating an upload", () => {
  it("answers a presigned, signed PUT URL on the request's own origin, valid for 10 minutes", async () => {
    const { client, sessionId } = await uploadSession();
    const before = Math.floor(Date.now() / 1000);
    const upload = await createUpload(client, sessionId, { name: "cat.png", size: 1234, mime_type: PNG });

    expect(upload.presigned_id).toMatch(/^upl_[A-Za-z0-9_-]{22}$/);
    expect(upload.path).toBe(uploadKey(sessionId, upload.presigned_id));
    const url = new URL(upload.presigned_url);
    expect(url.origin).toBe("https://gateway.test");
    expect(url.pathname).toBe(`/uploads/${upload.presigned_id}`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      session: sessionId,
      size: "1234",
      type: PNG,
      expires: String(upload.expires_at),
      signature: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    expect(upload.expires_at - before).toBeGreaterThanOrEqual(599);
    expect(upload.expires_at - before).toBeLessThanOrEqual(601);
    expect(await storedKeys(sessionId)).toEqual([]); // nothing until the PUT
  });

  it("refuses zero bytes, a size over UPLOAD_MAX_BYTES, and types not allowed or not MIME types", async () => {
    const { client, sessionId } = await uploadSession();
    const cases: [body: object, status: number, code: string][] = [
      [{ size: 0 }, 400, "UPLOAD_EMPTY"],
      [{ size: 50 * MIB + 1 }, 413, "UPLOAD_TOO_LARGE"],
      [{ mime_type: "text/html" }, 415, "UPLOAD_TYPE_NOT_ALLOWED"],
      [{ mime_type: "application/x-msdownload" }, 415, "UPLOAD_TYPE_NOT_ALLOWED"],
      [{ mime_type: "png" }, 415, "UPLOAD_TYPE_NOT_ALLOWED"],
      [{ mime_type: "image/png; name=x" }, 415, "UPLOAD_TYPE_NOT_ALLOWED"],
      [{ mime_type: "" }, 415, "UPLOAD_TYPE_NOT_ALLOWED"],
      [{ size: -1 }, 400, "INVALID_REQUEST"],
      [{ size: 1.5 }, 400, "INVALID_REQUEST"],
    ];
    for (const [overrides, status, code] of cases) {
      const response = await createUploadRaw(client, sessionId, { name: "a.png", size: 10, mime_type: PNG, ...overrides });
      expect({ overrides, status: response.status, code: (response.body.error as { code: string }).code }).toEqual({ overrides, status, code });
    }
    // The largest allowed size, and the configured families, are accepted.
    for (const accepted of [
      { size: 50 * MIB },
      { mime_type: "IMAGE/JPEG" },
      { mime_type: "video/webm" },
      { mime_type: "application/octet-stream" },
    ]) {
      expect((await createUploadRaw(client, sessionId, { name: "a.png", size: 10, mime_type: PNG, ...accepted })).status).toBe(200);
    }
    expect(await storedKeys(sessionId)).toEqual([]);
  });

  it("refuses names with paths, traversal, control or invisible characters, and overlong names", async () => {
    const { client, sessionId } = await uploadSession();
    const refused = [
      "../../etc/passwd",
      "..",
      ".",
      "photos/cat.png",
      "C:\\Users\\cat.png",
      "..\\cat.png",
      "",
      "   ",
      "cat\u0000.png",
      "cat\n.png",
      "cat\r.png",
      "cat\u007f.png",
      "cat\u0085.png",
      "cat\u202egnp.exe", // right-to-left override: shows as "catexe.png"
      "cat\u200b.png",
      "cat\u2028.png",
      "cat\ud800.png", // a lone surrogate
      "x".repeat(256),
      "é".repeat(128), // 256 UTF-8 bytes
    ];
    for (const name of refused) {
      const response = await createUploadRaw(client, sessionId, { name, size: 10, mime_type: PNG });
      expect({ name, status: response.status, code: (response.body.error as { code: string }).code }).toEqual({
        name,
        status: 400,
        code: "UPLOAD_NAME_INVALID",
      });
    }
    for (const name of ["cat (1).png", ".hidden.png", "x".repeat(255), "é".repeat(127), "日本語 ファイル.png", "a..b.png"]) {
      expect((await createUploadRaw(client, sessionId, { name, size: 10, mime_type: PNG })).status, name).toBe(200);
    }
    expect(await storedKeys(sessionId)).toEqual([]);
  });

  it("is refused on another account's session, an unknown session, an ended session, and without a token", async () => {
    const { sessionId } = await uploadSession();
    const stranger = await newClient();
    const file = { name: "a.png", size: 10, mime_type: PNG };
    expect(await createUploadRaw(stranger, sessionId, file)).toMatchObject({ status: 404, body: { error: { code: "SESSION_NOT_FOUND" } } });
    expect(await createUploadRaw(stranger, "ses_AAAAAAAAAAAAAAAAAAAAAA", file)).toMatchObject({
      status: 404,
      body: { error: { code: "SESSION_NOT_FOUND" } },
    });
    const anonymous = await exports.default.fetch(
      new Request(`https://gateway.test/sessions/${sessionId}/uploads`, {
        method: "POST",
        body: JSON.stringify(file),
        headers: { "Content-Type": "application/json" },
      }),
    );
    expect(await errorOf(anonymous)).toMatchObject({ status: 401, code: "TOKEN_MISSING" });

    const { client: owner, sessionId: endedId } = await uploadSession();
    expect((await getJson(owner, `/sessions/${endedId}`, { method: "DELETE" })).status).toBe(200);
    expect(await createUploadRaw(owner, endedId, file)).toMatchObject({ status: 409, body: { error: { code: "SESSION_ENDED" } } });
    expect(await storedKeys(sessionId)).toEqual([]);
  });

  it("allows UPLOAD_MAX_PER_SESSION uploads per session (10 in these tests), then UPLOAD_LIMIT_REACHED", async () => {
    const { client, sessionId } = await uploadSession();
    for (let i = 0; i < 10; i++) await createUpload(client, sessionId);
    expect(await createUploadRaw(client, sessionId, { name: "a.png", size: 10, mime_type: PNG })).toMatchObject({
      status: 429,
      body: { error: { code: "UPLOAD_LIMIT_REACHED" } },
    });
    // Another session of the same account is not affected.
    const other = await uploadSession(client);
    await createUpload(client, other.sessionId);
  });

  it("is disabled without UPLOAD_SIGNING_SECRET, and misconfigured with a short one", () => {
    expect(() => signingSecrets({})).toThrow(expect.objectContaining({ code: "UPLOADS_DISABLED", status: 503 }));
    expect(() => signingSecrets({ UPLOAD_SIGNING_SECRET: " , " })).toThrow(expect.objectContaining({ code: "UPLOADS_DISABLED" }));
    expect(() => signingSecrets({ UPLOAD_SIGNING_SECRET: "short" })).toThrow(expect.objectContaining({ code: "MISCONFIGURED" }));
    expect(signingSecrets({ UPLOAD_SIGNING_SECRET: `${"a".repeat(32)}, ${"b".repeat(40)}` })).toEqual(["a".repeat(32), "b".repeat(40)]);
  });
});

describe("PUT of the bytes", () => {
  it("stores exactly the bytes sent, with the upload's type, and reports it complete", async () => {
    const { client, sessionId } = await uploadSession();
    const bytes = pattern(5000);
    const upload = await createUpload(client, sessionId, { size: bytes.byteLength });
    const response = await put(upload.presigned_url, bytes);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ upload_id: upload.presigned_id, state: "complete", size: 5000, mime_type: PNG });
    expect(await storedKeys(sessionId)).toEqual([upload.path]);
    expect(await storedBytes(upload.path)).toEqual(bytes);
    expect((await env.UPLOADS.head(upload.path))?.httpMetadata?.contentType).toBe(PNG);
    const events = (await getJson(client, `/v1/sessions/${sessionId}/events`)).body.events as { type: string }[];
    expect(events.map((event) => event.type)).toEqual(expect.arrayContaining(["upload_created", "upload_complete"]));
  });

  it("streams a large body in many chunks (8 MiB) and keeps every byte in order", async () => {
    const { client, sessionId } = await uploadSession();
    const bytes = pattern(8 * MIB, 3);
    const upload = await createUpload(client, sessionId, { size: bytes.byteLength });
    const body = controlledStream();
    const done = put(upload.presigned_url, body.stream, { length: bytes.byteLength });
    for (let offset = 0; offset < bytes.byteLength; offset += 61_440) body.push(bytes.subarray(offset, offset + 61_440));
    body.end();
    expect((await done).status).toBe(200);
    const stored = await storedBytes(upload.path);
    expect(stored?.byteLength).toBe(bytes.byteLength);
    expect(await digest(stored!)).toBe(await digest(bytes));
  });

  it("accepts a PUT without Content-Type (the official client sends none for a typeless file)", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 10, mime_type: "application/octet-stream" });
    expect((await put(upload.presigned_url, pattern(10), { type: null })).status).toBe(200);
  });

  it("is single-use: a second PUT is refused and the first file stays as it was", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 100 });
    expect((await put(upload.presigned_url, pattern(100, 1))).status).toBe(200);
    expect(await errorOf(await put(upload.presigned_url, pattern(100, 2)))).toMatchObject({ status: 409, code: "UPLOAD_ALREADY_USED" });
    expect(await storedBytes(upload.path)).toEqual(pattern(100, 1));
  });

  it("refuses a second PUT while the first is still streaming; the first then completes", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 20 });
    const first = controlledStream();
    const firstDone = put(upload.presigned_url, first.stream, { length: 20 });
    first.push(pattern(10));
    await claimed(sessionId, upload.presigned_id);
    expect(await errorOf(await put(upload.presigned_url, pattern(20)))).toMatchObject({ status: 409, code: "UPLOAD_IN_PROGRESS" });
    first.push(pattern(10));
    first.end();
    expect((await firstDone).status).toBe(200);
    expect(await storedBytes(upload.path)).toEqual(new Uint8Array([...pattern(10), ...pattern(10)]));
  });

  it("refuses a tampered URL: signature, session, size, type, expiry or id changed", async () => {
    const { client, sessionId } = await uploadSession();
    const other = await uploadSession(client);
    const upload = await createUpload(client, sessionId, { size: 10 });
    const otherUpload = await createUpload(client, other.sessionId, { size: 10 });
    const url = new URL(upload.presigned_url);
    const signature = url.searchParams.get("signature")!;
    const tampered: [string, (url: URL) => void][] = [
      ["signature", (u) => u.searchParams.set("signature", (signature[0] === "A" ? "B" : "A") + signature.slice(1))],
      ["session", (u) => u.searchParams.set("session", other.sessionId)],
      ["size", (u) => u.searchParams.set("size", "11")],
      ["type", (u) => u.searchParams.set("type", "image/jpeg")],
      ["expires", (u) => u.searchParams.set("expires", String(Number(u.searchParams.get("expires")) + 3600))],
      ["id", (u) => (u.pathname = `/uploads/${otherUpload.presigned_id}`)],
    ];
    for (const [part, change] of tampered) {
      const changed = new URL(url);
      change(changed);
      const size = Number(changed.searchParams.get("size"));
      const type = changed.searchParams.get("type")!;
      expect({ part, ...(await errorOf(await put(changed.toString(), pattern(size), { type }))) }).toMatchObject({
        part,
        status: 403,
        code: "UPLOAD_SIGNATURE_INVALID",
      });
    }
    expect(await storedKeys(sessionId)).toEqual([]);
    expect(await storedKeys(other.sessionId)).toEqual([]);
    // The genuine URL still works.
    expect((await put(upload.presigned_url, pattern(10))).status).toBe(200);
  });

  it("refuses a URL with a part missing or malformed", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 10 });
    for (const name of ["session", "size", "type", "expires", "signature"]) {
      const url = new URL(upload.presigned_url);
      url.searchParams.delete(name);
      expect({ name, ...(await errorOf(await put(url.toString(), pattern(10)))) }).toMatchObject({ name, status: 400, code: "UPLOAD_URL_INVALID" });
    }
    const badId = upload.presigned_url.replace(upload.presigned_id, "upl_short");
    expect(await errorOf(await put(badId, pattern(10)))).toMatchObject({ status: 400, code: "UPLOAD_URL_INVALID" });
    expect(await storedKeys(sessionId)).toEqual([]);
  });

  it("refuses an expired URL, whether the Worker or the session's own clock finds it expired", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 10 });
    // Signed with the real secret, but already expired: only the expiry is wrong.
    const grant: UploadGrant = { uploadId: upload.presigned_id, sessionId, size: 10, mimeType: PNG, expires: Math.floor(Date.now() / 1000) - 1 };
    const expired = new URL(upload.presigned_url);
    expired.searchParams.set("expires", String(grant.expires));
    expired.searchParams.set("signature", await signGrant(env.UPLOAD_SIGNING_SECRET!, grant));
    expect(await errorOf(await put(expired.toString(), pattern(10)))).toMatchObject({ status: 403, code: "UPLOAD_URL_EXPIRED" });

    // The record expires with the URL: 10 minutes later by the session's clock, the genuine URL is refused too.
    await advanceClock(sessionStub(sessionId), 601_000);
    expect(await errorOf(await put(upload.presigned_url, pattern(10)))).toMatchObject({ status: 403, code: "UPLOAD_URL_EXPIRED" });
    expect(await storedKeys(sessionId)).toEqual([]);
  });

  it("requires Content-Length equal to the upload's size", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 10 });
    const cases: [length: number | string, status: number, code: string][] = [
      ["none", 411, "UPLOAD_LENGTH_REQUIRED"],
      [9, 400, "UPLOAD_SIZE_MISMATCH"],
      [11, 400, "UPLOAD_SIZE_MISMATCH"],
      [0, 400, "UPLOAD_SIZE_MISMATCH"],
      ["ten", 400, "UPLOAD_SIZE_MISMATCH"],
    ];
    for (const [length, status, code] of cases) {
      const stream = controlledStream();
      stream.push(pattern(10));
      stream.end();
      expect({ length, ...(await errorOf(await put(upload.presigned_url, stream.stream, { length }))) }).toMatchObject({ length, status, code });
    }
    expect(await storedKeys(sessionId)).toEqual([]);
    expect((await put(upload.presigned_url, pattern(10))).status).toBe(200); // refusals did not use the URL up
  });

  it("stores nothing when the body is longer or shorter than its Content-Length, or breaks off; the URL stays usable", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 1000 });
    const send = async (chunks: Uint8Array[], ending: "end" | "break") => {
      const body = controlledStream();
      const done = put(upload.presigned_url, body.stream, { length: 1000 });
      for (const chunk of chunks) body.push(chunk);
      if (ending === "end") body.end();
      else body.break();
      return errorOf(await done);
    };
    // Oversize: exactly the size in the first chunk, then more (R2 would keep the first 1000 bytes if given them).
    expect(await send([pattern(1000), pattern(1)], "end")).toMatchObject({ status: 413, code: "UPLOAD_BODY_TOO_LARGE" });
    expect(await send([pattern(600), pattern(600)], "end")).toMatchObject({ status: 413, code: "UPLOAD_BODY_TOO_LARGE" });
    expect(await send([pattern(999)], "end")).toMatchObject({ status: 400, code: "UPLOAD_BODY_INCOMPLETE" });
    expect(await send([pattern(999), pattern(1), new Uint8Array(0), pattern(1)], "end")).toMatchObject({
      status: 413,
      code: "UPLOAD_BODY_TOO_LARGE",
    });
    expect(await send([pattern(500)], "break")).toMatchObject({ status: 400, code: "UPLOAD_BODY_INCOMPLETE" });
    expect(await send([], "end")).toMatchObject({ status: 400, code: "UPLOAD_BODY_INCOMPLETE" });
    expect(await storedKeys(sessionId)).toEqual([]);

    expect((await put(upload.presigned_url, pattern(1000))).status).toBe(200);
    expect(await storedBytes(upload.path)).toEqual(pattern(1000));
  });

  it("refuses more bytes arriving after a body that filled its size exactly (large reads)", async () => {
    const { client, sessionId } = await uploadSession();
    const size = 256 * 1024;
    const upload = await createUpload(client, sessionId, { size });
    const body = controlledStream();
    const done = put(upload.presigned_url, body.stream, { length: size });
    body.push(pattern(size));
    await new Promise((resolve) => setTimeout(resolve, 50)); // the full size is read before the extra byte comes
    body.push(pattern(1));
    body.end();
    expect(await errorOf(await done)).toMatchObject({ status: 413, code: "UPLOAD_BODY_TOO_LARGE" });
    expect(await storedKeys(sessionId)).toEqual([]);
  });

  it("stores from a body that is not a byte stream too (built in-process), with the same checks", async () => {
    const stream = (...chunks: Uint8Array[]) =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(chunk);
          controller.close();
        },
      });
    expect(await storeExactly(env.UPLOADS, "plain/ok", stream(pattern(10), pattern(5)), 15, {})).toEqual({ ok: true });
    expect(await storedBytes("plain/ok")).toEqual(new Uint8Array([...pattern(10), ...pattern(5)]));
    expect(await storeExactly(env.UPLOADS, "plain/long", stream(pattern(15), pattern(1)), 15, {})).toMatchObject({
      ok: false,
      error: expect.objectContaining({ code: "UPLOAD_BODY_TOO_LARGE" }),
    });
    expect(await storeExactly(env.UPLOADS, "plain/short", stream(pattern(14)), 15, {})).toMatchObject({
      ok: false,
      error: expect.objectContaining({ code: "UPLOAD_BODY_INCOMPLETE" }),
    });
    expect(await storeExactly(env.UPLOADS, "plain/none", null, 15, {})).toMatchObject({
      ok: false,
      error: expect.objectContaining({ code: "UPLOAD_BODY_INCOMPLETE" }),
    });
    expect((await env.UPLOADS.list({ prefix: "plain/" })).objects.map((object) => object.key)).toEqual(["plain/ok"]);
    await env.UPLOADS.delete("plain/ok");
  });

  it("refuses a Content-Type other than the upload's type", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 10 });
    for (const type of ["image/jpeg", "text/html", "garbage"]) {
      expect({ type, ...(await errorOf(await put(upload.presigned_url, pattern(10), { type }))) }).toMatchObject({
        type,
        status: 415,
        code: "UPLOAD_TYPE_MISMATCH",
      });
    }
    expect(await storedKeys(sessionId)).toEqual([]);
    expect((await put(upload.presigned_url, pattern(10), { type: "IMAGE/PNG; x=1" })).status).toBe(200); // same essence
  });

  it("is refused once the session has ended, before and during the PUT, and nothing is kept", async () => {
    const { client, sessionId } = await uploadSession();
    const before = await createUpload(client, sessionId, { size: 10 });
    const during = await createUpload(client, sessionId, { size: 20 });
    const body = controlledStream();
    const streaming = put(during.presigned_url, body.stream, { length: 20 });
    body.push(pattern(10));
    await claimed(sessionId, during.presigned_id);
    expect(await errorOf(await put(during.presigned_url, pattern(20)))).toMatchObject({ status: 409, code: "UPLOAD_IN_PROGRESS" });

    expect((await getJson(client, `/sessions/${sessionId}`, { method: "DELETE" })).status).toBe(200);
    expect(await errorOf(await put(before.presigned_url, pattern(10)))).toMatchObject({ status: 409, code: "SESSION_ENDED" });
    body.push(pattern(10));
    body.end();
    expect(await errorOf(await streaming)).toMatchObject({ status: 409, code: "SESSION_ENDED" });
    expect(await storedKeys(sessionId)).toEqual([]);
  });

  it("allows the PUT from other origins (CORS preflight for PUT with Content-Type)", async () => {
    const { client, sessionId } = await uploadSession();
    const upload = await createUpload(client, sessionId, { size: 10 });
    const preflight = await exports.default.fetch(
      new Request(upload.presigned_url, {
        method: "OPTIONS",
        headers: { Origin: "https://app.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type" },
      }),
    );
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Methods")).toContain("PUT");
    expect(preflight.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("content-type");
    const response = await exports.default.fetch(
      new Request(upload.presigned_url, { method: "PUT", body: pattern(10), headers: { Origin: "https://app.example", "Content-Type": PNG } }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
  });

  it("an upload completed by one session is not visible in another's storage prefix", async () => {
    const { client, sessionId } = await uploadSession();
    const other = await uploadSession(client);
    const upload = await completeUpload(client, sessionId, pattern(10));
    expect(await storedKeys(other.sessionId)).toEqual([]);
    expect(await storedKeys(sessionId)).toEqual([upload.path]);
    expect(await errorCode(await put(upload.presigned_url, pattern(10)))).toBe("UPLOAD_ALREADY_USED");
  });
});

async function digest(bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}
