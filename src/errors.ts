/** The Worker's error: an entry of the error-code table (protocol/errors.ts) that becomes a JSON Response. */
import { ERROR_CODES, type ErrorBody, type ErrorCode } from "../protocol/errors.ts";
import type { Failure, Result } from "../protocol/result.ts";

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly recoverable: boolean;
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message?: string, retryAfter?: number) {
    super(message ?? ERROR_CODES[code].message);
    this.name = "ApiError";
    this.code = code;
    this.retryAfter = retryAfter;
    this.status = ERROR_CODES[code].status;
    this.recoverable = ERROR_CODES[code].recoverable || retryAfter !== undefined;
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        recoverable: this.recoverable,
        ...(this.retryAfter !== undefined && { retry_after: this.retryAfter }),
      },
    };
  }

  toResponse(headers?: HeadersInit): Response {
    const response = Response.json(this.toBody(), { status: this.status, headers });
    if (this.retryAfter !== undefined) response.headers.set("Retry-After", String(Math.ceil(this.retryAfter)));
    return response;
  }
}

/** The value of a Result, or its failure thrown as the ApiError the client sees: the one "Result → ApiError". */
export function unwrap<T>(result: Result<T, Failure>): T {
  if (!result.ok) throw new ApiError(result.error.code, result.error.message, result.error.retryAfter);
  return result.value;
}
