/**
 * File uploads (docs/uploads.md): a client creates an upload on its session and gets a presigned URL on this
 * gateway; it PUTs the bytes there (streamed into R2); the session's runtime reads them back. Handlers validate,
 * call the session's object and shape the answer; the upload rules, URL signing and streaming live in src/uploads/.
 */
import type { Hono } from "hono";
import { uploadSettings } from "../config.ts";
import { ApiError } from "../errors.ts";
import { route, type AppEnv } from "../http/route.ts";
import { ErrorResponse } from "../protocol/http.ts";
import { RuntimeId } from "../protocol/runtime.ts";
import { parse } from "../protocol/schema.ts";
import { CreateUploadRequest, CreateUploadResponse, UPLOAD_FACT_HEADERS as FACTS, UploadId, UploadStoredResponse } from "../protocol/uploads.ts";
import { receiveUpload } from "../uploads/receive.ts";
import { checkUploadRequest } from "../uploads/rules.ts";
import { presignedUrl, signingSecrets } from "../uploads/signing.ts";
import { sessionStub, unwrap } from "./sessions.ts";

const error = (description: string) => ({ description, schema: ErrorResponse });

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
      responses: {
        200: { description: "The upload and where to PUT its bytes.", schema: CreateUploadResponse },
        400: error("Bad name (UPLOAD_NAME_INVALID), zero bytes (UPLOAD_EMPTY), or a malformed body."),
        401: error("Missing or invalid token."),
        404: error("No such session for this account."),
        409: error("The session has ended."),
        413: error("Larger than UPLOAD_MAX_BYTES (UPLOAD_TOO_LARGE)."),
        415: error("A MIME type not in UPLOAD_ALLOWED_TYPES (UPLOAD_TYPE_NOT_ALLOWED)."),
        429: error("The session has created UPLOAD_MAX_PER_SESSION uploads."),
        503: error("Uploads are disabled (UPLOAD_SIGNING_SECRET is not set)."),
      },
    },
    async (c, body) => {
      const [secret] = signingSecrets(c.env);
      const settings = uploadSettings(c.env as unknown as Record<string, unknown>);
      checkUploadRequest(body, settings);
      const { urlTtlMs, maxPerSession } = settings;
      const upload = unwrap(
        await sessionStub(c).createUpload(c.get("principal").accountId, { name: body.name, mimeType: body.mime_type, size: body.size, urlTtlMs, maxPerSession }),
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
      responses: {
        200: { description: "Stored.", schema: UploadStoredResponse },
        400: error("Malformed URL, Content-Length not the size, or a body that ended early (nothing stored)."),
        403: error("Signature invalid, or the URL expired."),
        404: error("No such upload or session."),
        409: error("Already used, being uploaded by another request, or the session has ended."),
        411: error("No Content-Length."),
        413: error("A body longer than the size (nothing stored)."),
        415: error("Content-Type is not the upload's type."),
        502: error("Storage failed (nothing stored); try again."),
      },
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
      responses: {
        200: { description: "The file, streamed." },
        401: error("Missing or wrong runtime credential."),
        403: error("This runtime is not assigned to the session."),
        404: error("No such session, or no such upload in this session."),
        409: error("The upload is not complete, or the session has ended (its uploads are deleted)."),
      },
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
