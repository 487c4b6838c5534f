/**
 * The `data` channel between the official client and the model (peer to peer; the gateway never sees it). Every
 * message is JSON `{ scope, data }`:
 *   client → model: `{ scope: "application", data: { type, data } }` a command for the model;
 *                   `{ scope: "runtime", data: { type: "ping" | "fileUploaded" | "requestCapabilities", data } }`
 *   model → client: `{ scope: "application" | "runtime", data: <anything> }` (the client's `message` /
 *                   `runtimeMessage` events)
 */
import { FileRef, LIMITS, MAX_UPLOADS_PER_COMMAND, MessageScope } from "../protocol/common.ts";
import { json, object, optional, parse, record, string, type Infer } from "../protocol/schema.ts";

export const ClientEnvelope = object({
  scope: MessageScope,
  data: object({
    type: string({ min: 1, max: 128 }),
    data: optional(json()),
    /** File references by parameter (the official client's FileRefs), checked with the gateway before use. */
    uploads: optional(record(FileRef, { maxKeys: MAX_UPLOADS_PER_COMMAND })),
  }),
});
export type ClientEnvelope = Infer<typeof ClientEnvelope>;

/** The data of the `fileUploaded` runtime command: a file reference. */
export const FileUploaded = FileRef;

export type Decoded = { ok: true; envelope: ClientEnvelope } | { ok: false; problem: string };

export function decodeEnvelope(raw: string | Buffer): Decoded {
  if (typeof raw !== "string") return { ok: false, problem: "binary messages are not accepted" };
  if (raw.length > LIMITS.frameBytes) return { ok: false, problem: `larger than ${LIMITS.frameBytes} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, problem: "not JSON" };
  }
  const result = parse(ClientEnvelope, value);
  return result.ok ? { ok: true, envelope: result.value } : { ok: false, problem: result.error.message };
}

export function encodeEnvelope(scope: "application" | "runtime", data: unknown): string {
  return JSON.stringify({ scope, data });
}
