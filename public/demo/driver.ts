/**
 * What the page needs from a client, whichever SDK runs underneath: the native one (native.ts) or the official
 * `@reactor-team/js-sdk` 2.9.0 (official.ts). A driver turns its client's events into these callbacks.
 */
import type { SessionState } from "../../protocol/common.ts";

export type ClientStatus = "disconnected" | "connecting" | "waiting" | "ready";

/** The gateway's view of the session, where the client reports it (the official client does not). */
export interface SessionFacts {
  state?: SessionState;
  /** Why the session is in that state (`client_closed`, `no_capacity`…), where the gateway says. */
  reason?: string;
  queuePosition?: number;
  /** Unix ms at which a RECONNECTING session closes unless both sides are back. */
  graceDeadline?: number;
}

/** Link figures a client reports; the page fills the gaps from the <video> element. */
export interface LinkStats {
  rttMs?: number;
  candidateType?: string;
  fps?: number;
  bitrateKbps?: number;
}

export type LogKind = "info" | "sent" | "reply" | "error";

export interface DriverEvents {
  status(status: ClientStatus): void;
  sessionId(id: string | undefined): void;
  sessionFacts(facts: SessionFacts): void;
  video(stream: MediaStream): void;
  stats(stats: LinkStats): void;
  /** Application-scope data from the model. */
  message(data: unknown): void;
  /** An error the client reported (a ReactorError of either SDK: `{ code, message, recoverable }`). */
  error(error: unknown): void;
  /** Bytes of a file upload sent so far (the native SDK reports them; the official client does not). */
  uploadProgress(loaded: number, total: number): void;
  log(kind: LogKind, text: string): void;
}

export interface Driver {
  /** Prompts typed before the session is ready are kept and sent once it is (the native SDK buffers commands). */
  readonly sendsWhileWaiting: boolean;
  connect(token: () => Promise<string>): Promise<void>;
  /** Ends the session for good. */
  disconnect(): Promise<void>;
  /** Loses the connection as a network failure would, then lets the client recover. */
  dropConnection(): Promise<void>;
  sendPrompt(prompt: string): void;
  /** Uploads the file, then sends `set_image` with its FileRef; the model's reply arrives as a message. */
  sendImage(file: File): Promise<void>;
  /** Stops reporting events; the client is left as it is (disconnect first). */
  dispose(): void;
}

export interface DriverOptions {
  apiUrl: string;
  model: string;
  events: DriverEvents;
}

export type DriverFactory = (options: DriverOptions) => Promise<Driver>;

/** A ReactorError-like value: both SDKs emit `{ code, message, recoverable }`. */
export function isCodedError(error: unknown): error is { code: string; message: string; recoverable?: boolean } {
  return typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string" && "message" in error;
}

/** Any error as one log line: `CODE: message (recoverable)` for coded errors. */
export function describeError(error: unknown): string {
  if (isCodedError(error)) return `${error.code}: ${String(error.message)}${error.recoverable ? " (recoverable)" : ""}`;
  return error instanceof Error ? error.message : String(error);
}
