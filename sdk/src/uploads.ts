/**
 * File uploads (docs/uploads.md): `POST /sessions/{id}/uploads` for a presigned URL on the gateway, then the bytes
 * in one PUT — with XMLHttpRequest where there is one (browsers: upload progress events), else with fetch and a
 * counting stream (Node: progress as the body is read). The result is a FileRef: pass it as a command parameter and
 * `sendCommand` moves it into the command's `uploads` section, as the official client does.
 */
import type { FileRef as FileRefWire } from "../../protocol/common.ts";
import type { CreateUploadResponse } from "../../protocol/uploads.ts";
import { sdkError, type ReactorError } from "./errors.ts";
import { httpError } from "./rest.ts";

/** A file uploaded to the session, to pass as a command parameter. The same fields as the official client's. */
export class FileRef {
  readonly uploadId: string;
  readonly name: string;
  readonly mimeType: string;
  readonly size: number;

  constructor(uploadId: string, name: string, mimeType: string, size: number) {
    this.uploadId = uploadId;
    this.name = name;
    this.mimeType = mimeType;
    this.size = size;
  }

  /** The wire shape, in a command's `uploads` section. */
  toJSON(): FileRefWire {
    return { upload_id: this.uploadId, name: this.name, mime_type: this.mimeType, size: this.size };
  }
}

export interface UploadProgress {
  /** Bytes sent so far. */
  loaded: number;
  total: number;
}

export interface UploadFileOptions {
  /** Default: the File's name, else "upload". */
  name?: string;
  /** Default: the Blob's type, else application/octet-stream. */
  mimeType?: string;
  /** Called as the bytes go out (not more often than every 64 KiB in Node), and once with loaded = total at the end. */
  onProgress?: (progress: UploadProgress) => void;
}

/** A command's data with its FileRef values moved to `uploads` (the official client's wire shape). */
export function splitFileRefs(data: unknown): { data: unknown; uploads?: Record<string, FileRefWire> } {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return { data };
  const entries = Object.entries(data);
  if (!entries.some(([, value]) => value instanceof FileRef)) return { data };
  const uploads: Record<string, FileRefWire> = {};
  const rest: Record<string, unknown> = {};
  for (const [key, value] of entries) {
    if (value instanceof FileRef) uploads[key] = value.toJSON();
    else rest[key] = value;
  }
  return { data: rest, uploads };
}

/** What uploadFile needs from the file; checked before any request is made (the gateway checks the rest). */
export function describeFile(file: unknown, options: UploadFileOptions): { name: string; mimeType: string; size: number } {
  if (!(file instanceof Blob)) throw new TypeError("uploadFile: file must be a Blob or a File (in Node: fs.openAsBlob(path))");
  const name = options.name ?? ((file as Partial<File>).name || "upload");
  if (typeof name !== "string" || name.length === 0) throw new TypeError("uploadFile: name must be a non-empty string");
  const mimeType = options.mimeType ?? (file.type || "application/octet-stream");
  return { name, mimeType, size: file.size };
}

/** PUTs the file to its presigned URL; resolves once the gateway has stored it. */
export function putFile(
  slot: CreateUploadResponse,
  file: Blob,
  mimeType: string,
  options: { fetch: typeof fetch; onProgress?: (progress: UploadProgress) => void },
): Promise<void> {
  const report = progressReporter(file.size, options.onProgress);
  const sending =
    typeof XMLHttpRequest === "function"
      ? putWithXhr(slot.presigned_url, file, mimeType, report)
      : putWithFetch(slot.presigned_url, file, mimeType, options.fetch, report);
  return sending.then(() => report(file.size, true));
}

type Report = (loaded: number, final?: boolean) => void;

/** Calls `onProgress` with increasing figures only, and at most once with the total. */
function progressReporter(total: number, onProgress: ((progress: UploadProgress) => void) | undefined): Report {
  let last = -1;
  return (loaded, final = false) => {
    const value = final ? total : Math.min(loaded, total - 1); // the total only once the gateway has stored it all
    if (!onProgress || value <= last) return;
    last = value;
    try {
      onProgress({ loaded: value, total });
    } catch {
      // a throwing listener must not break the upload
    }
  };
}

function putWithXhr(url: string, file: Blob, mimeType: string, report: Report): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", mimeType);
    xhr.upload.onprogress = (event) => report(event.loaded);
    xhr.onload = () =>
      xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(refusal(xhr.status, xhr.getResponseHeader("Retry-After"), xhr.responseText));
    xhr.onerror = () => reject(networkError("the upload's connection failed"));
    xhr.ontimeout = () => reject(networkError("the upload timed out"));
    xhr.send(file);
  });
}

const NODE_PROGRESS_STEP = 64 * 1024;

async function putWithFetch(url: string, file: Blob, mimeType: string, fetchImpl: typeof fetch, report: Report): Promise<void> {
  let sent = 0;
  let reported = 0;
  // In pieces of at most one step: a Blob may hand over its bytes in one chunk, which would report nothing until the end.
  const counting = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let offset = 0; offset < chunk.byteLength; offset += NODE_PROGRESS_STEP) {
        const piece = chunk.subarray(offset, offset + NODE_PROGRESS_STEP);
        sent += piece.byteLength;
        if (sent - reported >= NODE_PROGRESS_STEP) {
          reported = sent;
          report(reported);
        }
        controller.enqueue(piece);
      }
    },
  });
  let response: Response;
  try {
    // Content-Length is set by hand: a stream body would otherwise be sent chunked, which the gateway refuses.
    response = await fetchImpl(url, {
      method: "PUT",
      body: file.stream().pipeThrough(counting),
      headers: { "Content-Type": mimeType, "Content-Length": String(file.size) },
      duplex: "half",
    } as RequestInit);
  } catch (error) {
    throw networkError(String(error));
  }
  if (!response.ok) throw refusal(response.status, response.headers.get("Retry-After"), await response.text().catch(() => ""));
}

function refusal(status: number, retryAfter: string | null, text: string): ReactorError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return httpError("PUT", "/uploads/…", { status, retryAfter }, json);
}

const networkError = (detail: string) => sdkError("NETWORK_ERROR", { recoverable: true, component: "api", message: `PUT /uploads/…: ${detail}` });
