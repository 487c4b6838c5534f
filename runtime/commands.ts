/**
 * Commands are checked against the model's declared schemas before the model sees them. A command that fails is
 * answered with an application-scope message instead:
 *   { type: "command_error", command: <type>, code: <one of COMMAND_ERROR_CODES>, message }
 */
import { parse } from "../src/protocol/schema.ts";
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
} as const;
export type CommandErrorCode = keyof typeof COMMAND_ERROR_CODES;

export interface CommandError {
  type: "command_error";
  command: string;
  code: CommandErrorCode;
  message: string;
}

export type Checked = { ok: true; command: { type: string; data: unknown } } | { ok: false; error: CommandError };

export function commandError(command: string, code: CommandErrorCode, detail?: string): CommandError {
  return { type: "command_error", command, code, message: detail ? `${COMMAND_ERROR_CODES[code]} ${detail}` : COMMAND_ERROR_CODES[code] };
}

export function checkCommand(specs: CommandSpecs, command: { type: string; data?: unknown }): Checked {
  if (!Object.hasOwn(specs, command.type)) return { ok: false, error: commandError(command.type, "UNKNOWN_COMMAND", `Known: ${Object.keys(specs).join(", ")}.`) };
  const result = parse(specs[command.type]!.schema, command.data ?? {});
  if (!result.ok) return { ok: false, error: commandError(command.type, "INVALID_COMMAND", `${result.error.path.replace(/^\$/, "data")}: ${result.error.problem}.`) };
  return { ok: true, command: { type: command.type, data: result.value } };
}
