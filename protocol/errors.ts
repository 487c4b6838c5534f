/**
 * The protocol's one error-code table: every error the gateway's own API returns, with its HTTP status, whether a
 * client may retry, and a default message. Wire shape: `{ "error": { "code", "message", "recoverable",
 * "retry_after"? } }`, plus a `Retry-After` header whenever `retry_after` is set.
 *
 * The SDK and the runtime agent read it too (codes and recoverability); the Worker's `ApiError` (src/errors.ts)
 * turns an entry into a Response.
 */
export const ERROR_CODES = {
  // Input
  INVALID_JSON: { status: 400, recoverable: false, message: "The request body is not valid JSON." },
  INVALID_REQUEST: { status: 400, recoverable: false, message: "The request does not match the expected schema." },
  PAYLOAD_TOO_LARGE: { status: 413, recoverable: false, message: "The request body is too large." },
  UNKNOWN_FIELD: { status: 400, recoverable: false, message: "The request body has a field this endpoint does not know." },
  FORBIDDEN_KEY: {
    status: 400,
    recoverable: false,
    message: "Object keys __proto__, constructor and prototype are not accepted (they would change the object instead of adding a key).",
  },

  // API keys (server-to-server)
  API_KEY_MISSING: { status: 401, recoverable: false, message: "Send your API key in the Reactor-API-Key header." },
  API_KEY_INVALID: { status: 401, recoverable: false, message: "The API key is unknown or has been revoked." },
  API_KEY_MALFORMED: { status: 401, recoverable: false, message: "An API key is rk_ followed by 43 to 128 characters of A-Z, a-z, 0-9, _ and -." },
  JWT_SENT_AS_API_KEY: {
    status: 401,
    recoverable: false,
    message: "A JWT was sent in Reactor-API-Key; send it as 'Authorization: Bearer <jwt>' instead.",
  },

  // Client tokens (JWT)
  TOKEN_MISSING: {
    status: 401,
    recoverable: false,
    message: "Send a token as 'Authorization: Bearer <jwt>' (or the bearer WebSocket subprotocol).",
  },
  TOKEN_MALFORMED: { status: 401, recoverable: false, message: "The bearer token is not a well-formed JWT." },
  TOKEN_TOO_LARGE: { status: 401, recoverable: false, message: "The bearer token exceeds the size limit." },
  TOKEN_ALGORITHM_NOT_ALLOWED: { status: 401, recoverable: false, message: "The token's signing algorithm is not accepted." },
  TOKEN_KEY_UNKNOWN: { status: 401, recoverable: false, message: "The token was signed by an unknown or retired key." },
  TOKEN_SIGNATURE_INVALID: { status: 401, recoverable: false, message: "The token's signature does not verify." },
  TOKEN_EXPIRED: { status: 401, recoverable: false, message: "The token has expired; mint a new one." },
  TOKEN_NOT_YET_VALID: { status: 401, recoverable: false, message: "The token is not valid yet (nbf is in the future)." },
  TOKEN_ISSUER_INVALID: { status: 401, recoverable: false, message: "The token was issued by someone else." },
  TOKEN_AUDIENCE_INVALID: { status: 401, recoverable: false, message: "The token is meant for another audience." },
  TOKEN_LIFETIME_TOO_LONG: { status: 401, recoverable: false, message: "The token lives longer than 6 hours." },
  TOKEN_CLAIMS_INVALID: { status: 401, recoverable: false, message: "The token's claims are missing or malformed." },
  TOKEN_UNSUPPORTED: {
    status: 401,
    recoverable: false,
    message: "The token uses a JOSE feature this gateway does not support (such as a crit header extension); mint one at POST /tokens.",
  },
  TOKEN_INVALID: { status: 401, recoverable: false, message: "The token does not verify." },
  API_KEY_SENT_AS_TOKEN: {
    status: 401,
    recoverable: false,
    message: "An API key was sent as a bearer token. Trade it for a JWT at POST /tokens, server side.",
  },

  // Admin
  ADMIN_UNAUTHORIZED: { status: 401, recoverable: false, message: "The admin token is missing or wrong." },
  ADMIN_DISABLED: { status: 403, recoverable: false, message: "Admin endpoints are disabled: ADMIN_TOKEN is not set." },

  // Protocol versions
  CLIENT_VERSION_TOO_OLD: { status: 426, recoverable: false, message: "The client speaks an API version this gateway no longer supports." },
  SERVER_VERSION_TOO_OLD: { status: 501, recoverable: false, message: "The client speaks an API version newer than this gateway." },

  // Runtimes (GPU side)
  RUNTIME_CREDENTIAL_INVALID: { status: 401, recoverable: false, message: "The runtime credential is missing or wrong." },
  RUNTIME_CREDENTIAL_NOT_ACCEPTED: {
    status: 401,
    recoverable: false,
    message: "A runtime credential was sent to a client route; clients need a JWT from POST /tokens.",
  },
  RUNTIME_NOT_ASSIGNED: { status: 403, recoverable: false, message: "This runtime is not assigned to that session." },

  // Sessions
  SESSION_NOT_FOUND: { status: 404, recoverable: false, message: "No session with that id." },
  SESSION_ENDED: { status: 409, recoverable: false, message: "The session has ended." },
  SESSION_STATE_CONFLICT: { status: 409, recoverable: false, message: "The session cannot do that in its current state." },
  CONNECTION_NOT_FOUND: { status: 404, recoverable: false, message: "No such connection on this session." },
  CONNECTION_SUPERSEDED: { status: 410, recoverable: false, message: "A newer connection replaced this one." },
  MODEL_NOT_ALLOWED: { status: 403, recoverable: false, message: "This token may not use that model." },
  MODEL_NOT_FOUND: { status: 404, recoverable: false, message: "No runtime has ever served a model by that name." },
  CONCURRENCY_LIMIT: {
    status: 429,
    recoverable: true,
    message: "The account has all the sessions it may have at once (waiting and connecting included); end one, then create again.",
  },
  TOKEN_SESSION_LIMIT: {
    status: 403,
    recoverable: false,
    message: "This token has created all the sessions its max_sessions allows; mint a new token.",
  },
  WEBSOCKET_REQUIRED: { status: 426, recoverable: false, message: "This endpoint expects a WebSocket upgrade." },

  // Uploads (docs/uploads.md). Creating one:
  UPLOADS_DISABLED: { status: 503, recoverable: false, message: "Uploads are disabled on this gateway: UPLOAD_SIGNING_SECRET is not set." },
  UPLOAD_NAME_INVALID: {
    status: 400,
    recoverable: false,
    message: "The file name must be 1 to 255 UTF-8 bytes, with no path separators, no control or formatting characters, and not '.' or '..'.",
  },
  UPLOAD_EMPTY: { status: 400, recoverable: false, message: "Empty (zero-byte) files cannot be uploaded." },
  UPLOAD_TOO_LARGE: { status: 413, recoverable: false, message: "The file is larger than this gateway accepts (UPLOAD_MAX_BYTES)." },
  UPLOAD_TYPE_NOT_ALLOWED: { status: 415, recoverable: false, message: "This MIME type is not accepted for uploads (UPLOAD_ALLOWED_TYPES)." },
  UPLOAD_LIMIT_REACHED: { status: 429, recoverable: false, message: "This session has created all the uploads it may (UPLOAD_MAX_PER_SESSION)." },
  // …sending its bytes (PUT /uploads/{id}):
  UPLOAD_URL_INVALID: { status: 400, recoverable: false, message: "The upload URL is malformed or incomplete." },
  UPLOAD_SIGNATURE_INVALID: { status: 403, recoverable: false, message: "The upload URL's signature does not verify." },
  UPLOAD_URL_EXPIRED: { status: 403, recoverable: false, message: "The upload URL has expired; create a new upload." },
  UPLOAD_ALREADY_USED: { status: 409, recoverable: false, message: "This upload URL has already stored a file; it is single-use." },
  UPLOAD_IN_PROGRESS: { status: 409, recoverable: false, message: "Another request is uploading to this URL right now." },
  UPLOAD_LENGTH_REQUIRED: { status: 411, recoverable: false, message: "Send the file with a Content-Length header equal to its size." },
  UPLOAD_SIZE_MISMATCH: { status: 400, recoverable: false, message: "Content-Length differs from the size the upload was created with." },
  UPLOAD_TYPE_MISMATCH: { status: 415, recoverable: false, message: "Content-Type differs from the MIME type the upload was created with." },
  UPLOAD_BODY_TOO_LARGE: { status: 413, recoverable: false, message: "The body is longer than the upload's size; nothing was stored." },
  UPLOAD_BODY_INCOMPLETE: { status: 400, recoverable: true, message: "The body ended before the upload's size was reached; nothing was stored." },
  UPLOAD_STORAGE_FAILED: { status: 502, recoverable: true, message: "The file could not be stored; nothing was kept. Try the PUT again." },
  // …and referring to it (a command's uploads section, a runtime fetching the bytes):
  UPLOAD_NOT_FOUND: { status: 404, recoverable: false, message: "No upload with that id in this session." },
  UPLOAD_NOT_COMPLETE: { status: 409, recoverable: false, message: "That upload has not been completed (its PUT has not succeeded)." },
  UPLOAD_REF_MISMATCH: { status: 409, recoverable: false, message: "The file reference's name, MIME type or size differs from the upload's." },

  // Frames and signaling (socket errors carry these codes too)
  FRAME_UNSUPPORTED: { status: 400, recoverable: false, message: "Only text frames carrying JSON are accepted." },
  FRAME_TOO_LARGE: { status: 413, recoverable: false, message: "The frame exceeds 256 KiB." },
  FRAME_MALFORMED: { status: 400, recoverable: false, message: "The frame is not valid JSON." },
  FRAME_INVALID: { status: 400, recoverable: false, message: "The frame does not match its schema." },
  UNKNOWN_FRAME_TYPE: { status: 400, recoverable: false, message: "Unknown frame type." },
  SDP_TOO_LARGE: { status: 413, recoverable: false, message: "The SDP exceeds 64 KiB." },
  STALE_GENERATION: { status: 409, recoverable: false, message: "That peer connection generation is no longer current." },
  ICE_CANDIDATE_LIMIT: { status: 429, recoverable: false, message: "Too many ICE candidates for this peer connection." },
  COMMAND_REPLAYED: { status: 409, recoverable: false, message: "A command with that seq was already received." },
  COMMAND_SEQ_GAP: { status: 409, recoverable: true, message: "Commands must be numbered without gaps; resend from the expected seq." },
  COMMAND_BUFFER_FULL: { status: 429, recoverable: true, message: "The command buffer is full while the session is not ready." },
  COMMAND_DROPPED: { status: 409, recoverable: false, message: "The command was dropped: the session is not ready and its policy is drop." },
  MESSAGE_SEQ_GAP: {
    status: 409,
    recoverable: true,
    message: "Messages must be numbered without gaps; the gateway asks for a resend from the expected seq.",
  },
  MESSAGE_BUFFER_FULL: {
    status: 429,
    recoverable: true,
    message: "The client's message buffer is full (it is away, or not acknowledging); the message is asked for again once there is room.",
  },
  TOKEN_NOT_FOR_SESSION: {
    status: 403,
    recoverable: false,
    message: "That token is for another account, or narrowed to other models: it cannot renew this session's socket.",
  },
  HELLO_REQUIRED: { status: 409, recoverable: false, message: "A runtime session socket must say hello first; the frame was ignored." },
  FRAME_REFUSED_BY_RUNTIME: {
    status: 502,
    recoverable: false,
    message: "The runtime could not take a frame the gateway sent it; the session was released.",
  },
  EXTRA_ARGS_TOO_LARGE: { status: 413, recoverable: false, message: "extra_args exceeds 64 KiB of JSON." },

  // Browsers
  ORIGIN_NOT_ALLOWED: {
    status: 403,
    recoverable: false,
    message: "Browsers on this origin may not call this gateway (it is not in CORS_ALLOWED_ORIGINS).",
  },

  // Generic
  NOT_FOUND: { status: 404, recoverable: false, message: "Not found." },
  METHOD_NOT_ALLOWED: { status: 405, recoverable: false, message: "Method not allowed." },
  RATE_LIMITED: { status: 429, recoverable: true, message: "Too many requests; retry later." },
  INTERNAL: { status: 500, recoverable: true, message: "Internal error." },
  MISCONFIGURED: { status: 500, recoverable: false, message: "The gateway is misconfigured." },
} as const satisfies Record<string, { status: number; recoverable: boolean; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; recoverable: boolean; retry_after?: number };
}
