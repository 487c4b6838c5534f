/**
 * The one error type of the SDK. Gateway errors keep the gateway's code (`TOKEN_EXPIRED`, `CONCURRENCY_LIMIT`…,
 * see src/errors.ts); the SDK's own codes are listed in `SDK_ERROR_CODES`. `retryAfter` (seconds) is set on
 * recoverable errors, except those that waiting alone does not cure (`CONCURRENCY_LIMIT`: end a session first).
 */
import type { ErrorCode } from "../../protocol/errors.ts";

export type ErrorComponent = "api" | "gpu" | "sdk";

/** Every code a ReactorError may carry: the gateway's (src/errors.ts) and the SDK's own. */
export type ReactorErrorCode = ErrorCode | SdkErrorCode;

export interface ReactorErrorInit {
  code: ReactorErrorCode | (string & {});
  message: string;
  recoverable: boolean;
  /** Seconds; defaults to 1 on recoverable errors, absent otherwise. `null`: no wait helps, none is set. */
  retryAfter?: number | null;
  component: ErrorComponent;
  /** Why the session ended, when the error is about its end (`no_runtime`, `max_duration`…). */
  reason?: string;
  /** What the error answers, when the gateway says (a command seq, a frame type). */
  ref?: unknown;
}

export class ReactorError extends Error {
  /** A gateway or SDK code (switch on it: `ReactorErrorCode` lists them); a newer gateway may send others. */
  readonly code: ReactorErrorCode | (string & {});
  readonly recoverable: boolean;
  readonly retryAfter: number | undefined;
  readonly component: ErrorComponent;
  readonly timestamp: number;
  readonly reason: string | undefined;
  readonly ref: unknown;

  constructor(init: ReactorErrorInit) {
    super(init.message);
    this.name = "ReactorError";
    this.code = init.code;
    this.recoverable = init.recoverable;
    this.retryAfter = init.retryAfter === null ? undefined : init.recoverable ? (init.retryAfter ?? DEFAULT_RETRY_AFTER) : init.retryAfter;
    this.component = init.component;
    this.timestamp = Date.now();
    this.reason = init.reason;
    this.ref = init.ref;
  }
}

const DEFAULT_RETRY_AFTER = 1;

/** Codes raised by the SDK itself (everything else comes from the gateway). */
export const SDK_ERROR_CODES = {
  NETWORK_ERROR: "The gateway could not be reached.",
  INVALID_RESPONSE: "The gateway answered with something this SDK does not understand.",
  DISCONNECTED: "The signaling connection dropped; reconnecting.",
  RECONNECT_TIMEOUT: "Could not reconnect within the session's grace window; the session is over.",
  SESSION_REPLACED: "Another connection took over this session.",
  NOT_CONNECTED: "There is no session: call connect() first.",
  ALREADY_CONNECTED: "connect() was called while a session is in use; call disconnect() first.",
  TOKEN_SOURCE_FAILED: "The token function threw or returned no token.",
  FRAME_TOO_LARGE: "The command does not fit in one 256 KiB frame.",
  PEER_CONNECTION_FAILED: "The media connection failed; restarting ICE on the same session.",
  ICE_FAILED: "No network path to the GPU: every ICE candidate pair failed (a NAT or firewall in the way needs TURN).",
  ICE_SERVER_ERROR: "A STUN/TURN server refused or did not answer (for TURN: credentials refused or expired).",
  // Why a session ended, when the client did not end it (status reason → code, see `endReasonCode`).
  MODEL_UNAVAILABLE: "No GPU runtime serves this model.",
  NO_CAPACITY: "No GPU became free in time.",
  CONNECT_TIMEOUT: "The media connection was not established in time after a GPU was assigned.",
  RUNTIME_LOST: "The GPU runtime serving the session was lost.",
  SESSION_MAX_DURATION: "The session reached its maximum length.",
  SESSION_ENDED: "The session has ended.",
} as const;

export type SdkErrorCode = keyof typeof SDK_ERROR_CODES;

export function sdkError(
  code: SdkErrorCode,
  options: { recoverable?: boolean; retryAfter?: number; component?: ErrorComponent; message?: string; reason?: string } = {},
): ReactorError {
  return new ReactorError({
    code,
    message: options.message ?? SDK_ERROR_CODES[code],
    recoverable: options.recoverable ?? false,
    retryAfter: options.retryAfter,
    component: options.component ?? "sdk",
    reason: options.reason,
  });
}

/** Session end reasons (the `reason` of a CLOSED/INACTIVE status) → the error code reported for them. */
const END_REASONS: [prefix: string, code: SdkErrorCode][] = [
  ["no_runtime", "MODEL_UNAVAILABLE"],
  ["no_capacity", "NO_CAPACITY"],
  ["client_never_connected", "CONNECT_TIMEOUT"],
  ["client_reconnect_timeout", "RECONNECT_TIMEOUT"],
  ["runtime_lost", "RUNTIME_LOST"],
  ["runtime_released", "RUNTIME_LOST"],
  ["runtime_frame_error", "RUNTIME_LOST"],
  ["max_duration", "SESSION_MAX_DURATION"],
];

export function endReasonCode(reason: string | undefined): SdkErrorCode {
  return END_REASONS.find(([prefix]) => reason?.startsWith(prefix))?.[1] ?? "SESSION_ENDED";
}

export function sessionEndedError(state: string, reason: string | undefined): ReactorError {
  const code = endReasonCode(reason);
  const component: ErrorComponent = code === "RUNTIME_LOST" || code === "MODEL_UNAVAILABLE" || code === "NO_CAPACITY" ? "gpu" : "api";
  return sdkError(code, { component, reason, message: `${SDK_ERROR_CODES[code]} (session ${state}: ${reason ?? "no reason given"})` });
}
