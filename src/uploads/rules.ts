/**
 * What an upload may be: its name, size and MIME type, each refused with its own error code. Names are checked, not
 * rewritten: the client's FileRef carries the name it declared, and the gateway compares references exactly.
 */
import type { UploadSettings } from "../config.ts";
import { ApiError } from "../errors.ts";

export const MAX_NAME_BYTES = 255;

/** Control (C0, DEL, C1), formatting (bidi overrides, zero-width), lone surrogates, line and paragraph separators. */
const INVISIBLE_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;
const MIME_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/i;

const encoder = new TextEncoder();

/** Why `name` is refused, or undefined if it is acceptable. */
export function nameProblem(name: string): string | undefined {
  if (name.trim() === "") return "The file name is empty.";
  if (encoder.encode(name).byteLength > MAX_NAME_BYTES) return `The file name is longer than ${MAX_NAME_BYTES} UTF-8 bytes.`;
  if (/[/\\]/.test(name)) return "The file name contains a path separator ('/' or '\\'); send the name only.";
  if (name === "." || name === "..") return "The file name may not be '.' or '..'.";
  if (INVISIBLE_OR_CONTROL.test(name)) return "The file name contains control or invisible formatting characters.";
  return undefined;
}

/** `image/png; charset=x` → `image/png` (lower case); undefined for anything that is not a MIME type. */
export function mimeEssence(value: string): string | undefined {
  const essence = value.split(";")[0]!.trim().toLowerCase();
  return MIME_TYPE.test(essence) ? essence : undefined;
}

export function typeAllowed(mimeType: string, allowed: readonly string[]): boolean {
  const type = mimeType.toLowerCase();
  const family = `${type.split("/")[0]}/*`;
  return allowed.some((entry) => entry === "*" || entry === type || entry === family);
}

/** Throws the precise ApiError for an upload the gateway will not create. */
export function checkUploadRequest(request: { name: string; size: number; mime_type: string }, settings: UploadSettings): void {
  const problem = nameProblem(request.name);
  if (problem) throw new ApiError("UPLOAD_NAME_INVALID", problem);
  if (request.size === 0) throw new ApiError("UPLOAD_EMPTY");
  if (request.size > settings.maxBytes) {
    throw new ApiError("UPLOAD_TOO_LARGE", `The file is ${request.size} bytes; this gateway accepts at most ${settings.maxBytes}.`);
  }
  // A type with parameters (`text/plain; charset=utf-8`) is refused too: the PUT's Content-Type is compared to it.
  if (mimeEssence(request.mime_type) !== request.mime_type.toLowerCase()) {
    throw new ApiError("UPLOAD_TYPE_NOT_ALLOWED", `"${request.mime_type.slice(0, 100)}" is not a MIME type (type/subtype, no parameters).`);
  }
  if (!typeAllowed(request.mime_type, settings.allowedTypes)) {
    throw new ApiError("UPLOAD_TYPE_NOT_ALLOWED", `${request.mime_type} is not accepted; this gateway takes ${settings.allowedTypes.join(", ")}.`);
  }
}
