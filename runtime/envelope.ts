/**
 * The `data` channel between the official client and the model (peer to peer; the gateway never sees it). Every
 * message is JSON `{ scope, data }`:
 *   client → model: `{ scope: "application", data: { type, data } }` a command for the model;
 *                   `{ scope: "runtime", data: { type: "ping" | "fileUploaded" | "requestCapabilities", data } }`
 *   model → client: `{ scope: "application" | "runtime", data: <anything> }` (the client's `message` /
 *                   `runtimeMessage` events)
 */
import { FileRef, LIMITS, MAX_UPLOADS_PER_COMMAND, MessageScope } from "../protocol/common.ts";
import { fail, ok, type Result } from "../protocol/result.ts";
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

/** The envelope, or why not: the frame code that fits and, as the message, the problem the client is told. */
export function decodeEnvelope(raw: string | Buffer): Result<ClientEnvelope> {
  if (typeof raw !== "string") return fail("FRAME_UNSUPPORTED", "binary messages are not accepted");
  if (raw.length > LIMITS.frameBytes) return fail("FRAME_TOO_LARGE", `larger than ${LIMITS.frameBytes} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return fail("FRAME_MALFORMED", "not JSON");
  }
  const result = parse(ClientEnvelope, value);
  return result.ok ? ok(result.value) : fail("FRAME_INVALID", result.error.message);
}

export function encodeEnvelope(scope: "application" | "runtime", data: unknown): string {
  return JSON.stringify({ scope, data });
}
