/**
 * File uploads (docs/uploads.md): a client creates an upload on its session and gets a presigned URL on this
 * gateway; it PUTs the bytes there (streamed into R2); the session's runtime reads them back. Handlers validate,
 * call the session's object and shape the answer; the upload rules, URL signing and streaming live in src/uploads/.
 */
import type { Hono } from "hono";
import { RuntimeId } from "../../protocol/runtime.ts";
import { parse } from "../../protocol/schema.ts";
import { CreateUploadRequest, CreateUploadResponse, UPLOAD_FACT_HEADERS as FACTS, UploadId, UploadStoredResponse } from "../../protocol/uploads.ts";
import { uploadSettings } from "../config.ts";
import { ApiError } from "../errors.ts";
import { route, type AppEnv } from "../http/route.ts";
import { receiveUpload } from "../uploads/receive.ts";
import { checkUploadRequest } from "../uploads/rules.ts";
import { presignedUrl, signingSecrets } from "../uploads/signing.ts";
import { unwrap } from "../objects.ts";
import { sessionStub } from "./sessions.ts";

export function uploadRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "post",
      path: "/sessions/:id/uploads",
      tag: "Uploads",
      auth: "bearer",
      summary: "Create an upload on the session: a presigned, single-use PUT URL on this gateway for a file of this size and type.",
      body: CreateUploadRequest,
      responses: { 200: { description: "The upload and where to PUT its bytes.", schema: CreateUploadResponse } },
      errors: [
        "UPLOADS_DISABLED",
        "MISCONFIGURED", // UPLOAD_SIGNING_SECRET is set but unusable
        "UPLOAD_NAME_INVALID",
        "UPLOAD_EMPTY",
        "UPLOAD_TOO_LARGE",
        "UPLOAD_TYPE_NOT_ALLOWED",
        "SESSION_NOT_FOUND",
        "SESSION_ENDED",
        "UPLOAD_LIMIT_REACHED",
      ],
    },
    async (c, body) => {
      const [secret] = signingSecrets(c.env);
      const settings = uploadSettings(c.env);
      checkUploadRequest(body, settings);
      const { urlTtlMs, maxPerSession } = settings;
      const upload = unwrap(
        await sessionStub(c).createUpload(c.get("principal").accountId, {
          name: body.name,
          mimeType: body.mime_type,
          size: body.size,
          urlTtlMs,
          maxPerSession,
        }),
      );
      const expires = Math.floor(upload.expiresAt / 1000);
      const grant = { uploadId: upload.uploadId, sessionId: upload.sessionId, size: upload.size, mimeType: upload.mimeType, expires };
      return c.json({
        presigned_id: upload.uploadId,
        presigned_url: await presignedUrl(new URL(c.req.url).origin, secret!, grant),
        path: upload.key,
        expires_at: expires,
      } satisfies CreateUploadResponse);
    },
  );

  route(
    app,
    {
      method: "put",
      path: "/uploads/:upload_id",
      tag: "Uploads",
      auth: "none",
      summary:
        "The file's bytes, on the URL from POST /sessions/{id}/uploads (its query carries the signed session, size, type and expiry). " +
        "Content-Length must equal the size; a Content-Type, if sent, the type. Stored only whole; single use.",
      parameters: [
        { name: "Content-Length", in: "header", required: true, schema: { type: "integer" } },
        ...["session", "size", "type", "expires", "signature"].map((name) => ({ name, in: "query", required: true, schema: { type: "string" } })),
      ],
      responses: { 200: { description: "Stored.", schema: UploadStoredResponse } },
      errors: [
        "UPLOADS_DISABLED",
        "MISCONFIGURED",
        "UPLOAD_URL_INVALID",
        "UPLOAD_SIGNATURE_INVALID",
        "UPLOAD_URL_EXPIRED",
        "UPLOAD_LENGTH_REQUIRED",
        "UPLOAD_SIZE_MISMATCH",
        "UPLOAD_TYPE_MISMATCH",
        "SESSION_NOT_FOUND",
        "SESSION_ENDED",
        "UPLOAD_NOT_FOUND",
        "UPLOAD_ALREADY_USED",
        "UPLOAD_IN_PROGRESS",
        "UPLOAD_BODY_TOO_LARGE",
        "UPLOAD_BODY_INCOMPLETE",
        "UPLOAD_STORAGE_FAILED",
      ],
    },
    async (c) => c.json(await receiveUpload(c.env, c.req.raw, c.req.param("upload_id") ?? "")),
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/runtime/sessions/:id/uploads/:upload_id",
      tag: "Runtimes",
      auth: "runtime",
      summary:
        "The bytes of a complete upload of the session (?runtime_id=…, only the runtime assigned to it). " +
        `Headers ${FACTS.name} (percent-encoded), ${FACTS.type} and ${FACTS.size} carry the upload's facts.`,
      responses: { 200: { description: "The file, streamed." } },
      // SESSION_ENDED: an ended session's uploads are deleted.
      errors: ["INVALID_REQUEST", "RUNTIME_NOT_ASSIGNED", "SESSION_NOT_FOUND", "UPLOAD_NOT_FOUND", "UPLOAD_NOT_COMPLETE", "SESSION_ENDED"],
    },
    async (c) => {
      const runtimeId = parse(RuntimeId, c.req.query("runtime_id"));
      if (!runtimeId.ok) throw new ApiError("INVALID_REQUEST", `runtime_id: ${runtimeId.error.problem}`);
      const uploadId = parse(UploadId, c.req.param("upload_id"));
      if (!uploadId.ok) throw new ApiError("UPLOAD_NOT_FOUND");
      const upload = unwrap(await sessionStub(c).uploadForRuntime(runtimeId.value, uploadId.value));
      const object = await c.env.UPLOADS.get(upload.key);
      if (!object) throw new ApiError("UPLOAD_NOT_FOUND", "The upload's bytes are gone.");
      return new Response(object.body, {
        headers: {
          "Content-Type": upload.mimeType,
          "Content-Length": String(object.size),
          "Cache-Control": "no-store",
          [FACTS.name]: encodeURIComponent(upload.name),
          [FACTS.type]: upload.mimeType,
          [FACTS.size]: String(upload.size),
        },
      });
    },
  );
}
