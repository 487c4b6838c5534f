/**
 * `PUT /uploads/{id}?…`: the bytes of an upload, on a presigned URL (no other auth). Checked in order, each
 * failure with its own code and nothing stored: the URL (well-formed, signed, not expired), the declared length
 * and type, the upload's record (claimed by this PUT alone, in the session's object), then the body itself,
 * streamed into R2 (store.ts). The record becomes complete only once R2 holds the whole file.
 */
import { randomId } from "../../lib/encoding.ts";
import { ApiError } from "../errors.ts";
import type { UploadStoredResponse } from "../../protocol/uploads.ts";
import { mimeEssence } from "./rules.ts";
import { grantSigned, readGrant, signingSecrets, type UploadGrant } from "./signing.ts";
import { storeExactly } from "./store.ts";
import { sessionRelay, unwrap, type UploadFacts } from "../objects.ts";

export async function receiveUpload(env: Env, request: Request, uploadId: string): Promise<UploadStoredResponse> {
  const grant = await verifiedGrant(env, request, uploadId);
  checkDeclaredBody(request.headers, grant);
  const session = sessionRelay(env, grant.sessionId);
  const attempt = randomId(12);
  const upload = unwrap(await session.claimUpload({ uploadId, size: grant.size, mimeType: grant.mimeType, attempt }));
  const stored = await store(env, request, upload).catch(async (error: unknown) => {
    // Nothing was stored: the URL may be used again. (Should the release fail, the upload stays claimed until the
    // session ends; the client can create another.)
    await session.releaseUpload(uploadId, attempt).catch(() => undefined);
    throw error;
  });
  const completed = await session.completeUpload(uploadId, attempt);
  if (!completed.ok) await env.UPLOADS.delete(upload.key).catch(() => undefined); // the session ended meanwhile
  unwrap(completed);
  return stored;
}

/** The URL's grant, once its signature verifies and it has not expired. */
async function verifiedGrant(env: Env, request: Request, uploadId: string): Promise<UploadGrant> {
  const secrets = signingSecrets(env);
  const { grant, signature } = readGrant(new URL(request.url), uploadId);
  if (!(await grantSigned(secrets, grant, signature))) throw new ApiError("UPLOAD_SIGNATURE_INVALID");
  if (grant.expires * 1000 < Date.now()) throw new ApiError("UPLOAD_URL_EXPIRED");
  return grant;
}

/** Content-Length must be the signed size; a Content-Type, if sent, the signed type. Checked before any byte is read. */
function checkDeclaredBody(headers: Headers, grant: UploadGrant): void {
  const length = headers.get("Content-Length");
  if (length === null) throw new ApiError("UPLOAD_LENGTH_REQUIRED");
  if (!/^\d{1,16}$/.test(length.trim()) || Number(length) !== grant.size) {
    throw new ApiError("UPLOAD_SIZE_MISMATCH", `Content-Length is ${length.slice(0, 20)}; this upload is ${grant.size} bytes.`);
  }
  const type = headers.get("Content-Type");
  if (type !== null && mimeEssence(type) !== grant.mimeType.toLowerCase()) {
    throw new ApiError("UPLOAD_TYPE_MISMATCH", `Content-Type is ${type.slice(0, 100)}; this upload is ${grant.mimeType}.`);
  }
}

async function store(env: Env, request: Request, upload: UploadFacts): Promise<UploadStoredResponse> {
  const outcome = await storeExactly(env.UPLOADS, upload.key, request.body, upload.size, {
    httpMetadata: { contentType: upload.mimeType },
    customMetadata: { session_id: upload.sessionId, upload_id: upload.uploadId },
  });
  if (!outcome.ok) {
    const { code, message: detail } = outcome.error;
    if (code === "UPLOAD_STORAGE_FAILED") console.error("upload storage failed", upload.uploadId, detail);
    throw new ApiError(code, code === "UPLOAD_STORAGE_FAILED" ? undefined : `Nothing was stored: ${detail}.`);
  }
  return { upload_id: upload.uploadId, state: "complete", size: upload.size, mime_type: upload.mimeType };
}
