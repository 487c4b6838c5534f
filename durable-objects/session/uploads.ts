/**
 * The session's side of uploads (docs/uploads.md): the records live here (upload-log.ts), the bytes in R2, moved by
 * the Worker's routes. SessionRelay's upload RPC methods are these; its end deletes the bytes (settlement.ts).
 */
import { randomId } from "../../lib/encoding.ts";
import type { FileRef } from "../../protocol/common.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import { uploadKey } from "../../src/uploads/store.ts";
import type { SessionHost } from "./host.ts";
import { isEnded } from "./lifecycle.ts";
import { fail, ok, type NewUpload, type Result, type SessionRecord, type UploadFacts } from "./record.ts";
import type { UploadClaim, UploadRecord } from "./upload-log.ts";

/** What uploads need from their session object. */
export type UploadsHost = Pick<SessionHost, "uploads" | "events" | "now" | "record" | "keepNothing">;

export class SessionUploads {
  readonly #host: UploadsHost;

  constructor(host: UploadsHost) {
    this.#host = host;
  }

  /** A new upload of the session (its caller checked it is the account's, and live), pending until its PUT. */
  create(upload: NewUpload): Result<UploadFacts> {
    const { uploads, events } = this.#host;
    if (uploads.count >= upload.maxPerSession) return fail("UPLOAD_LIMIT_REACHED");
    const now = this.#host.now();
    const record = uploads.create({ id: `upl_${randomId(16)}`, ...upload, createdAt: now, expiresAt: now + upload.urlTtlMs });
    events.record(now, "upload_created", { upload_id: record.id, size: record.size, mime_type: record.mimeType });
    return ok(this.#facts(record));
  }

  /** A PUT takes the upload (one at a time, and only until one has succeeded). */
  claim(claim: UploadClaim): Result<UploadFacts> {
    const live = this.#live();
    if (!live.ok) return live;
    const refused = this.#host.uploads.claim(claim, this.#host.now());
    if (refused) return fail(refused);
    return ok(this.#facts(this.#host.uploads.get(claim.uploadId)!));
  }

  /** The claiming PUT stored the bytes. Refused once the session has ended: the caller then deletes them. */
  complete(uploadId: string, attempt: string): Result<true> {
    const live = this.#live();
    if (!live.ok) return live;
    const now = this.#host.now();
    const refused = this.#host.uploads.complete(uploadId, attempt, now);
    if (refused) return fail(refused);
    this.#host.events.record(now, "upload_complete", { upload_id: uploadId });
    return ok(true);
  }

  /** The claiming PUT failed and stored nothing. */
  release(uploadId: string, attempt: string): void {
    this.#host.uploads.release(uploadId, attempt);
  }

  /** The bytes of a complete upload, for the runtime assigned to this session only. */
  forRuntime(runtimeId: string, uploadId: string): Result<UploadFacts> {
    const live = this.#live();
    if (!live.ok) return live;
    if (live.value.runtime?.runtimeId !== runtimeId) return fail("RUNTIME_NOT_ASSIGNED");
    const record = this.#host.uploads.get(uploadId);
    if (!record) return fail("UPLOAD_NOT_FOUND");
    if (record.state !== "complete") return fail("UPLOAD_NOT_COMPLETE");
    return ok(this.#facts(record));
  }

  /** The first file reference of a command that does not check out, with why. */
  refusedRef(refs: Record<string, FileRef> | undefined): { param: string; code: ErrorCode } | undefined {
    for (const [param, ref] of Object.entries(refs ?? {})) {
      const code = this.#host.uploads.checkRef(ref);
      if (code) return { param, code };
    }
    return undefined;
  }

  /** The session while it lives; none (a guessed id: nothing is kept) or an ended one takes no upload traffic. */
  #live(): Result<SessionRecord> {
    const session = this.#host.record();
    if (!session) {
      this.#host.keepNothing();
      return fail("SESSION_NOT_FOUND");
    }
    if (isEnded(session.state)) return fail("SESSION_ENDED", `The session is ${session.state}; its uploads are deleted.`);
    return ok(session);
  }

  #facts(record: UploadRecord): UploadFacts {
    const sessionId = this.#host.record()!.id;
    const { id: uploadId, name, mimeType, size, expiresAt } = record;
    return { uploadId, sessionId, key: uploadKey(sessionId, uploadId), name, mimeType, size, expiresAt };
  }
}
