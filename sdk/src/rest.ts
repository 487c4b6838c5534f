/**
 * The few REST calls the native SDK makes: create a session (the official client's `POST /sessions`), end it,
 * look at it when a socket cannot be opened (a browser hides why an upgrade failed; REST tells the precise code),
 * and create uploads.
 */
import { ErrorResponse } from "../../protocol/http.ts";
import { parse, type Infer, type Schema } from "../../protocol/schema.ts";
import { SessionInfo, SessionResponse } from "../../protocol/sessions.ts";
import { CreateUploadResponse, type CreateUploadRequest } from "../../protocol/uploads.ts";
import { ReactorError, sdkError } from "./errors.ts";

export const SDK_VERSION = "0.1.0";

export type SessionResponseBody = Infer<typeof SessionResponse>;
export type SessionInfoBody = Infer<typeof SessionInfo>;

export class SessionApi {
  readonly #baseUrl: string;
  readonly #fetch: typeof fetch;

  constructor(baseUrl: string, fetchImpl: typeof fetch) {
    this.#baseUrl = baseUrl.replace(/\/+$/, "");
    this.#fetch = fetchImpl;
  }

  createSession(token: string, model: string): Promise<SessionResponseBody> {
    const body = {
      model: { name: model },
      client_info: { sdk_version: SDK_VERSION, sdk_type: "native-js" },
      supported_transports: [{ protocol: "webrtc", version: "1.0" }],
    };
    return this.#call("POST", "/sessions", token, SessionResponse, body);
  }

  async endSession(token: string, sessionId: string, reason: string): Promise<void> {
    try {
      await this.#call("DELETE", `/sessions/${encodeURIComponent(sessionId)}`, token, SessionResponse, { reason });
    } catch (error) {
      // Already gone is what we wanted.
      if (!(error instanceof ReactorError && error.code === "SESSION_NOT_FOUND")) throw error;
    }
  }

  sessionInfo(token: string, sessionId: string): Promise<SessionInfoBody> {
    return this.#call("GET", `/sessions/${encodeURIComponent(sessionId)}/info`, token, SessionInfo);
  }

  /** A presigned URL for one file (docs/uploads.md). */
  createUpload(token: string, sessionId: string, file: CreateUploadRequest): Promise<CreateUploadResponse> {
    return this.#call("POST", `/sessions/${encodeURIComponent(sessionId)}/uploads`, token, CreateUploadResponse, file);
  }

  async #call<T>(method: string, path: string, token: string, schema: Schema<T>, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await this.#fetch(`${this.#baseUrl}${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          "Reactor-API-Version": "1",
          ...(body !== undefined && { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw sdkError("NETWORK_ERROR", { recoverable: true, component: "api", message: `${method} ${path}: ${String(error)}` });
    }
    const json = await response.json().catch(() => undefined);
    if (!response.ok) throw httpError(method, path, { status: response.status, retryAfter: response.headers.get("Retry-After") }, json);
    const parsed = parse(schema, json);
    if (!parsed.ok) throw sdkError("INVALID_RESPONSE", { component: "api", message: `${method} ${path}: ${parsed.error.message}` });
    return parsed.value;
  }
}

/** The gateway's error body as a ReactorError; a body that is not one still gets a code from the HTTP status. */
export function httpError(method: string, path: string, response: { status: number; retryAfter: string | null }, json: unknown): ReactorError {
  const header = Number(response.retryAfter);
  const parsed = parse(ErrorResponse, json);
  if (parsed.ok) {
    const { code, message, recoverable, retry_after } = parsed.value.error;
    // A 429 that names no time (CONCURRENCY_LIMIT) is not cured by waiting: no retryAfter is made up for it.
    const noWait = response.status === 429 && retry_after === undefined && !header;
    return new ReactorError({ code, message, recoverable, retryAfter: noWait ? null : (retry_after ?? (header || undefined)), component: "api" });
  }
  const serverSide = response.status >= 500 || response.status === 429;
  return new ReactorError({
    code: response.status === 429 ? "RATE_LIMITED" : serverSide ? "SERVER_ERROR" : "INVALID_RESPONSE",
    message: `${method} ${path}: HTTP ${response.status}`,
    recoverable: serverSide,
    retryAfter: header || undefined,
    component: "api",
  });
}
