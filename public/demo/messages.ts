/**
 * Words for what the page is told: the model's messages as readable log lines (the same whichever client carries
 * them), and which errors deserve the banner — the ones that need the person to do something. Errors the client
 * recovers from by itself (a dropped connection) stay in the message log.
 */
import { isCodedError, type LogKind } from "./driver.ts";

const MAX_LINE = 300;

export interface Banner {
  title: string;
  /** May hold `code` parts. */
  text: string;
}

type Fields = Record<string, unknown>;

const asFields = (data: unknown): Fields | undefined =>
  typeof data === "object" && data !== null && !Array.isArray(data) ? (data as Fields) : undefined;
const str = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value));
const clip = (line: string): string => (line.length > MAX_LINE ? `${line.slice(0, MAX_LINE - 1)}…` : line);

/** A model message as one log line: replies stand out, errors read as errors, anything else as `key: value` pairs. */
export function describeMessage(data: unknown): [LogKind, string] {
  const fields = asFields(data);
  switch (fields?.type) {
    case "command_result":
      return describeResult(fields!);
    case "command_error":
      return [
        "error",
        clip(
          `command_error ${str(fields!.command)}: ${str(fields!.message ?? fields!.code)}${fields!.code === undefined ? "" : ` (${str(fields!.code)})`}`,
        ),
      ];
    case "error":
      return ["error", clip(`model error ${str(fields!.code ?? "")}: ${str(fields!.message ?? "")}`)];
    case "file_uploaded":
      return ["info", clip(`file_uploaded ${str(fields!.name)} (${str(fields!.mime_type)}, ${str(fields!.size)} bytes)`)];
  }
  if (!fields) return ["info", clip(`model message: ${str(data)}`)];
  const { type, ...rest } = fields;
  const pairs = Object.entries(rest).map(([key, value]) => `${key}: ${str(value)}`);
  return ["info", clip(`model message${type === undefined ? "" : ` ${str(type)}`}${pairs.length > 0 ? ` — ${pairs.join(", ")}` : ""}`)];
}

function describeResult(reply: Fields): [LogKind, string] {
  const ok = reply.ok === true;
  const outcome = ok ? "ok" : `failed${reply.error === undefined ? "" : `: ${str(reply.error)}`}`;
  const prompt = typeof reply.prompt === "string" ? ` — prompt "${reply.prompt}"` : "";
  const file = typeof reply.sha256 === "string" ? ` — ${str(reply.bytes)} bytes, sha256 ${reply.sha256}` : "";
  const data = reply.data === undefined ? "" : ` — ${str(reply.data)}`;
  return [ok ? "reply" : "error", clip(`command_result ${str(reply.command)} ${outcome}${prompt}${file}${data}`)];
}

/** A model message of the shape `{ type: "error", code, message }` (ENCODER_UNAVAILABLE…) goes in the banner. */
export function bannerForMessage(data: unknown): Banner | undefined {
  const fields = asFields(data);
  if (fields?.type !== "error") return undefined;
  const code = typeof fields.code === "string" ? ` (\`${fields.code}\`)` : "";
  return { title: "The model reported an error", text: `${str(fields.message ?? "no details")}${code}` };
}

/** Codes that need the person, whatever their `recoverable` says: the client cannot cure them by retrying. */
const NEEDS_ACTION: Record<string, Banner> = {
  CONCURRENCY_LIMIT: {
    title: "Too many sessions at once",
    text: "This account already has all the sessions it may run at the same time. End one of them (or wait for one to end), then press Connect again.",
  },
};

/** The banner for a client's error, or undefined for one it recovers from by itself (log only). */
export function bannerForError(error: unknown): Banner | undefined {
  if (!isCodedError(error)) return { title: "Something went wrong", text: error instanceof Error ? error.message : String(error) };
  const known = NEEDS_ACTION[error.code];
  if (known) return { title: known.title, text: `${known.text} (\`${error.code}\`)` };
  const tokenProblem = error.code.startsWith("TOKEN_");
  if (error.recoverable && !tokenProblem) return undefined;
  const title =
    error.code === "TOKEN_SOURCE_FAILED" ? "Could not get a token" : tokenProblem ? "The token was refused" : "The client reported an error";
  return { title, text: `${String(error.message)} (\`${error.code}\`)` };
}
