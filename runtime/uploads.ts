/**
 * File references the client sends (a command's `uploads`, the official client's `fileUploaded`) are checked with
 * the gateway before the model sees them: `GET /v1/runtime/sessions/{id}/uploads/{upload_id}?runtime_id=…` answers
 * the bytes only to the runtime assigned to the session, and only for a complete upload of that session. A
 * reference that does not check out is refused with the gateway's code (UPLOAD_NOT_FOUND, UPLOAD_NOT_COMPLETE…), or
 * UPLOAD_REF_MISMATCH when the client's name, type or size differ from the gateway's record.
 *
 * The checking request's body is the file itself: the model's first `stream()` reads it, and it is cancelled if
 * the model never does, so a file is fetched once and never held in memory by the agent.
 *
 * A refusal is a `Result` error with the `command_error`'s code and message, not a `Failure`: besides the gateway's
 * codes it can be the agent's own UPLOAD_UNAVAILABLE (commands.ts's table), which no gateway route answers.
 */
import type { FileRef } from "../protocol/common.ts";
import { ERROR_CODES, type ErrorCode } from "../protocol/errors.ts";
import { ErrorResponse } from "../protocol/http.ts";
import { err, ok, type Result } from "../protocol/result.ts";
import { parse } from "../protocol/schema.ts";
import { UPLOAD_FACT_HEADERS as HEADERS, UPLOAD_ID_PATTERN } from "../protocol/uploads.ts";
import { commandError, type CommandError } from "./commands.ts";
import type { UploadedFile } from "./model.ts";

export interface UploadReaderOptions {
  gatewayUrl: string;
  token: string;
  sessionId: string;
  runtimeId: string;
  fetch?: typeof fetch;
}

export type Resolution = Result<
  { files: Record<string, UploadedFile> /** Cancels the bodies the model did not read. */; release(): void },
  CommandError
>;

/** Why one reference was refused: the gateway's code, or UPLOAD_UNAVAILABLE when the gateway could not be asked. */
type Refusal = Pick<CommandError, "code" | "message">;
type Opened = Result<{ file: UploadedFile; release(): void }, Refusal>;

export class UploadReader {
  readonly #options: UploadReaderOptions;
  readonly #fetch: typeof fetch;

  constructor(options: UploadReaderOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Checks every reference of `command` with the gateway; the first that fails refuses the whole command. */
  async resolve(command: string, refs: Record<string, FileRef>): Promise<Resolution> {
    const entries = Object.entries(refs);
    const opened = await Promise.all(entries.map(([, ref]) => this.#open(ref)));
    const release = () => {
      for (const result of opened) if (result.ok) result.value.release();
    };
    const failed = opened.findIndex((result) => !result.ok);
    if (failed >= 0) {
      release();
      const refusal = (opened[failed] as Extract<Opened, { ok: false }>).error;
      const message = `uploads.${entries[failed]![0]}: ${refusal.message}`;
      return err({ ...commandError(command, "UPLOAD_UNAVAILABLE"), code: refusal.code, message });
    }
    const files = Object.fromEntries(entries.map(([param], index) => [param, (opened[index] as Extract<Opened, { ok: true }>).value.file]));
    return ok({ files, release });
  }

  async #open(ref: FileRef): Promise<Opened> {
    // Checked here, so a malformed id never becomes another path on the gateway.
    if (!UPLOAD_ID_PATTERN.test(ref.upload_id)) return refused("UPLOAD_NOT_FOUND");
    const response = await this.#request(ref.upload_id);
    if (!response.ok) return response;
    const body = response.value.body;
    const facts = uploadFacts(ref.upload_id, response.value.headers);
    if (facts.name !== ref.name || facts.mime_type !== ref.mime_type || facts.size !== ref.size) {
      await body?.cancel().catch(() => undefined);
      return refused("UPLOAD_REF_MISMATCH");
    }
    return ok(this.#file(facts, body));
  }

  #file(facts: Omit<UploadedFile, "stream" | "bytes">, first: ReadableStream<Uint8Array> | null): { file: UploadedFile; release(): void } {
    let unread = first;
    const stream = async (): Promise<ReadableStream<Uint8Array>> => {
      const body = unread;
      unread = null;
      if (body) return body;
      const again = await this.#request(facts.upload_id);
      if (!again.ok) throw new Error(`${again.error.code}: ${again.error.message}`);
      return again.value.body ?? new Response(new Uint8Array(0)).body!;
    };
    const file: UploadedFile = { ...facts, stream, bytes: async () => new Uint8Array(await new Response(await stream()).arrayBuffer()) };
    return { file, release: () => void unread?.cancel().catch(() => undefined) };
  }

  async #request(uploadId: string): Promise<Result<Response, Refusal>> {
    const { gatewayUrl, token, sessionId, runtimeId } = this.#options;
    const path = `/v1/runtime/sessions/${encodeURIComponent(sessionId)}/uploads/${uploadId}?runtime_id=${encodeURIComponent(runtimeId)}`;
    let response: Response;
    try {
      response = await this.#fetch(new URL(path, gatewayUrl), { headers: { Authorization: `Bearer ${token}` } });
    } catch (error) {
      return err({ code: "UPLOAD_UNAVAILABLE", message: `the gateway could not be reached: ${String(error)}` });
    }
    if (response.ok) return ok(response);
    return err(await gatewayRefusal(response));
  }
}

/** A refusal with the gateway's own code and message for it. */
const refused = (code: ErrorCode) => err({ code, message: ERROR_CODES[code].message });

function uploadFacts(uploadId: string, headers: Headers): Omit<UploadedFile, "stream" | "bytes"> {
  return {
    upload_id: uploadId,
    name: safeDecode(headers.get(HEADERS.name) ?? ""),
    mime_type: headers.get(HEADERS.type) ?? "",
    size: Number(headers.get(HEADERS.size)),
  };
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** The gateway's error code and message; a body that is not its error shape counts as the gateway being unavailable. */
async function gatewayRefusal(response: Response): Promise<Refusal> {
  const parsed = parse(ErrorResponse, await response.json().catch(() => undefined));
  if (parsed.ok && Object.hasOwn(ERROR_CODES, parsed.value.error.code)) {
    return { code: parsed.value.error.code as ErrorCode, message: parsed.value.error.message };
  }
  return { code: "UPLOAD_UNAVAILABLE", message: `the gateway answered HTTP ${response.status}` };
}
