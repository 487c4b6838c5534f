/**
 * The one result type of the codebase: a value, or an error that says why not. Code that can fail on input it does
 * not control (a frame, a request body, a configuration value) returns a Result instead of throwing, so the caller
 * decides what the failure means (a socket error frame, an HTTP error, a startup message).
 *
 * The error is a `Failure` (a code of the error-code table and a message) unless a caller needs more: the schema
 * toolkit's `parse` returns a `Result<T, SchemaError>` so the path of the offending field stays available.
 */
import type { ErrorCode } from "./errors.ts";

export type Result<T, E = Failure> = { ok: true; value: T } | { ok: false; error: E };

/**
 * Why something failed: a code from the error-code table (protocol/errors.ts) and a message for people. `C` narrows
 * the codes a function can fail with (a limit check fails only with limit codes); `retryAfter` (seconds) is set when
 * trying again later can succeed, and becomes the error body's `retry_after` and the Retry-After header.
 */
export interface Failure<C extends ErrorCode = ErrorCode> {
  code: C;
  message: string;
  retryAfter?: number;
}

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function err<E>(error: E): { ok: false; error: E } {
  return { ok: false, error };
}

/** A failed Result with a Failure: `fail("FRAME_MALFORMED", "The frame is not valid JSON.")`. */
export function fail<C extends ErrorCode>(code: C, message: string, retryAfter?: number): { ok: false; error: Failure<C> } {
  return { ok: false, error: { code, message, ...(retryAfter !== undefined && { retryAfter }) } };
}
