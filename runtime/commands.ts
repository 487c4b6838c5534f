/**
 * Commands are checked against the model's declared schemas before the model sees them. A command that fails is
 * answered with an application-scope message instead:
 *   { type: "command_error", command: <type>, code: <one of COMMAND_ERROR_CODES, or the gateway's upload code>, message }
 */
import type { FileRef } from "../protocol/common.ts";
import type { ErrorCode } from "../protocol/errors.ts";
import { err, ok, type Result } from "../protocol/result.ts";
import { parse } from "../protocol/schema.ts";
import type { CommandSpecs } from "./model.ts";

export const COMMAND_ERROR_CODES = {
  /** The model declares no command of that type. */
  UNKNOWN_COMMAND: "The model has no command of that type.",
  /** The data does not match the command's schema (the message names the field). */
  INVALID_COMMAND: "The command's data does not match its schema.",
  /** The model failed while handling it. */
  COMMAND_FAILED: "The model failed to handle the command.",
  /** A data channel message that is not a `{ scope, data: { type, data } }` envelope (`command` is then ""). */
  MALFORMED_ENVELOPE: "The data channel message is not a command envelope.",
  /** A file reference could not be checked: the gateway did not answer (its own refusals keep their code). */
  UPLOAD_UNAVAILABLE: "The gateway could not be reached to check the file.",
} as const;
export type CommandErrorCode = keyof typeof COMMAND_ERROR_CODES;

export interface CommandError {
  type: "command_error";
  command: string;
  /** The agent's own codes, or the gateway's when it refused a file reference (UPLOAD_NOT_FOUND…, src/errors.ts). */
  code: CommandErrorCode | ErrorCode;
  message: string;
}

export type CheckedCommand = { type: string; data: unknown; uploads: Record<string, FileRef> };
/** Refused with the `command_error` the client is sent (a wire message, so it carries the command's type too). */
export type Checked = Result<CheckedCommand, CommandError>;

export function commandError(command: string, code: CommandErrorCode, detail?: string): CommandError {
  return { type: "command_error", command, code, message: detail ? `${COMMAND_ERROR_CODES[code]} ${detail}` : COMMAND_ERROR_CODES[code] };
}

export function checkCommand(specs: CommandSpecs, command: { type: string; data?: unknown; uploads?: Record<string, FileRef> }): Checked {
  if (!Object.hasOwn(specs, command.type)) return err(commandError(command.type, "UNKNOWN_COMMAND", `Known: ${Object.keys(specs).join(", ")}.`));
  const spec = specs[command.type]!;
  const result = parse(spec.schema, command.data ?? {});
  if (!result.ok) return err(commandError(command.type, "INVALID_COMMAND", `${result.error.path.replace(/^\$/, "data")}: ${result.error.problem}.`));
  const uploads = command.uploads ?? {};
  const problem = uploadsProblem(spec.uploads ?? [], Object.keys(uploads));
  if (problem) return err(commandError(command.type, "INVALID_COMMAND", problem));
  return ok({ type: command.type, data: result.value, uploads });
}

/** Every declared file parameter must be given, and no other. */
function uploadsProblem(declared: readonly string[], given: string[]): string | undefined {
  const missing = declared.find((param) => !given.includes(param));
  if (missing !== undefined) return `uploads.${missing}: is required (a FileRef from uploadFile).`;
  const unknown = given.find((param) => !declared.includes(param));
  if (unknown !== undefined) return `uploads.${unknown}: this command takes ${declared.length > 0 ? `files ${declared.join(", ")}` : "no files"}.`;
  return undefined;
}
