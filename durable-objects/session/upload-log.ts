/**
 * The session's uploads, in its SQLite (docs/uploads.md). Each upload moves through a transition table:
 *
 *   pending ──claim──▶ uploading ──complete──▶ complete
 *      ▲                   │
 *      └─────release───────┘   (the PUT failed: nothing was stored, the URL may be used again until it expires)
 *
 * Only one PUT at a time holds the claim (its `attempt` id), and once one has completed the upload is used up: a
 * URL stores at most one file, exactly.
 */
import type { FileRef } from "../../protocol/common.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import type { UploadClaim } from "../../src/objects.ts";

export type UploadState = "pending" | "uploading" | "complete";
type UploadEvent = "claim" | "release" | "complete";

const TRANSITIONS: Record<UploadState, Partial<Record<UploadEvent, UploadState>>> = {
  pending: { claim: "uploading" },
  uploading: { release: "pending", complete: "complete" },
  complete: {},
};

export interface UploadRecord {
  id: string;
  name: string;
  mimeType: string;
  size: number;
  state: UploadState;
  createdAt: number;
  /** Unix ms after which the URL is refused. */
  expiresAt: number;
  /** The PUT holding the claim while `uploading`. */
  attempt: string | null;
  completedAt: number | null;
}

type Row = {
  id: string;
  name: string;
  mime_type: string;
  size: number;
  state: UploadState;
  created_at: number;
  expires_at: number;
  attempt: string | null;
  completed_at: number | null;
};

const toRecord = (row: Row): UploadRecord => ({
  id: row.id,
  name: row.name,
  mimeType: row.mime_type,
  size: row.size,
  state: row.state,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  attempt: row.attempt,
  completedAt: row.completed_at,
});

export type { UploadClaim } from "../../src/objects.ts";

export class UploadLog {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  static readonly schema = `CREATE TABLE IF NOT EXISTS uploads (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      mime_type TEXT NOT NULL,
      size INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('pending', 'uploading', 'complete')),
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      attempt TEXT,
      completed_at INTEGER
    );`;

  get count(): number {
    return this.#sql.exec<{ count: number }>("SELECT count(*) AS count FROM uploads").one().count;
  }

  create(upload: Pick<UploadRecord, "id" | "name" | "mimeType" | "size" | "createdAt" | "expiresAt">): UploadRecord {
    this.#sql.exec(
      "INSERT INTO uploads (id, name, mime_type, size, state, created_at, expires_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
      upload.id,
      upload.name,
      upload.mimeType,
      upload.size,
      upload.createdAt,
      upload.expiresAt,
    );
    return { ...upload, state: "pending", attempt: null, completedAt: null };
  }

  get(id: string): UploadRecord | undefined {
    const row = this.#sql.exec<Row>("SELECT * FROM uploads WHERE id = ?", id).toArray()[0];
    return row && toRecord(row);
  }

  /** A PUT takes the upload; returns why not, if it may not. */
  claim(claim: UploadClaim, now: number): ErrorCode | undefined {
    const record = this.get(claim.uploadId);
    if (!record) return "UPLOAD_NOT_FOUND";
    if (record.size !== claim.size || record.mimeType !== claim.mimeType) return "UPLOAD_SIGNATURE_INVALID";
    if (record.state === "complete") return "UPLOAD_ALREADY_USED";
    if (record.state === "uploading") return "UPLOAD_IN_PROGRESS";
    if (now > record.expiresAt) return "UPLOAD_URL_EXPIRED";
    this.#move(record, "claim", claim.attempt);
    return undefined;
  }

  /** The claiming PUT stored the bytes. */
  complete(uploadId: string, attempt: string, now: number): ErrorCode | undefined {
    const record = this.get(uploadId);
    if (!record) return "UPLOAD_NOT_FOUND";
    if (record.state !== "uploading" || record.attempt !== attempt) return record.state === "complete" ? "UPLOAD_ALREADY_USED" : "UPLOAD_IN_PROGRESS";
    this.#move(record, "complete", null, now);
    return undefined;
  }

  /** The claiming PUT failed and stored nothing: the upload is pending again. */
  release(uploadId: string, attempt: string): void {
    const record = this.get(uploadId);
    if (record?.state === "uploading" && record.attempt === attempt) this.#move(record, "release", null);
  }

  /** Why a command may not use this file reference, or undefined if it may (exists here, complete, same facts). */
  checkRef(ref: FileRef): ErrorCode | undefined {
    const record = this.get(ref.upload_id);
    if (!record) return "UPLOAD_NOT_FOUND";
    if (record.state !== "complete") return "UPLOAD_NOT_COMPLETE";
    if (record.name !== ref.name || record.mimeType !== ref.mime_type || record.size !== ref.size) return "UPLOAD_REF_MISMATCH";
    return undefined;
  }

  /** The files were deleted with the session's end: their records go too. */
  clear(): void {
    this.#sql.exec("DELETE FROM uploads");
  }

  #move(record: UploadRecord, event: UploadEvent, attempt: string | null, completedAt: number | null = null): void {
    const to = TRANSITIONS[record.state][event];
    if (to === undefined) throw new Error(`upload ${record.id}: ${event} is not allowed from ${record.state}`);
    this.#sql.exec("UPDATE uploads SET state = ?, attempt = ?, completed_at = ? WHERE id = ?", to, attempt, completedAt, record.id);
  }
}
