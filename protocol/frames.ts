/** Decoding of WebSocket frames: size, JSON and schema checks, each failure with its own error code. */
import { LIMITS } from "./common.ts";
import type { ErrorCode } from "./errors.ts";
import { fail, ok, type Result } from "./result.ts";
import { parse, type Schema, type SchemaError } from "./schema.ts";

/** The frame, typed by `schema`; or the failure, with the code a socket error frame carries. */
export function decodeFrame<T>(schema: Schema<T>, raw: string | ArrayBuffer): Result<T> {
  if (typeof raw !== "string") return fail("FRAME_UNSUPPORTED", "Binary frames are not accepted.");
  if (utf8Length(raw) > LIMITS.frameBytes) return fail("FRAME_TOO_LARGE", `Frames are limited to ${LIMITS.frameBytes} bytes.`);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return fail("FRAME_MALFORMED", "The frame is not valid JSON.");
  }
  const result = parse(schema, value);
  if (result.ok) return ok(result.value);
  return fail(schemaErrorCode(result.error), result.error.message);
}

/** The most precise code for a schema failure: its own (a forbidden key, an unknown field), an unknown `type`, an oversized SDP, or a mismatch. */
export function schemaErrorCode(error: SchemaError): ErrorCode {
  if (error.code) return error.code;
  if (error.path === "$.type") return "UNKNOWN_FRAME_TYPE";
  if (/\.sdp(_offer)?$/.test(error.path) && error.problem.startsWith("must be at most")) return "SDP_TOO_LARGE";
  return "FRAME_INVALID";
}

/** Size of `text` on the wire. A UTF-16 unit takes 1 to 3 bytes, so only long text needs encoding to know. */
function utf8Length(text: string): number {
  if (text.length * 3 <= LIMITS.frameBytes || text.length > LIMITS.frameBytes) return text.length;
  return new TextEncoder().encode(text).byteLength;
}
