/**
 * REST shapes of file uploads (docs/uploads.md), as `@reactor-team/js-sdk@2.9.0` speaks them:
 * `POST /sessions/{id}/uploads` → a presigned `PUT` URL on the gateway, then the bytes.
 */
import { integer, literal, object, string, type Infer } from "./schema.ts";

export const UPLOAD_ID_PATTERN = /^upl_[A-Za-z0-9_-]{22}$/;

/**
 * Headers of `GET /v1/runtime/sessions/{id}/uploads/{upload_id}` (the runtime reading a file) carrying the gateway's
 * record of it; the name percent-encoded, as headers are ASCII.
 */
export const UPLOAD_FACT_HEADERS = { name: "Reactor-Upload-Name", type: "Reactor-Upload-Type", size: "Reactor-Upload-Size" } as const;
export const UploadId = string({ pattern: UPLOAD_ID_PATTERN });

/** Checked loosely here; the name, size and type rules (each with its own error code) are in src/uploads/rules.ts. */
export const CreateUploadRequest = object({
  name: string({ max: 4096, description: "The file's name: no path, no control characters, at most 255 UTF-8 bytes." }),
  size: integer({ min: 0, max: Number.MAX_SAFE_INTEGER, description: "Bytes; the PUT must send exactly this many." }),
  mime_type: string({ max: 256, description: "type/subtype; the PUT's Content-Type, if any, must match." }),
});
export type CreateUploadRequest = Infer<typeof CreateUploadRequest>;

export const CreateUploadResponse = object({
  presigned_id: string({ description: "The upload's id: the FileRef's upload_id." }),
  presigned_url: string({ description: "PUT the bytes here (no other auth); single use, expires." }),
  path: string({ description: "Where the bytes are kept (informational)." }),
  expires_at: integer({ description: "Unix seconds after which the URL is refused." }),
});
export type CreateUploadResponse = Infer<typeof CreateUploadResponse>;

export const UploadStoredResponse = object({
  upload_id: string(),
  state: literal("complete"),
  size: integer({ min: 1 }),
  mime_type: string(),
});
export type UploadStoredResponse = Infer<typeof UploadStoredResponse>;
