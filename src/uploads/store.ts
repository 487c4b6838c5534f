/**
 * Streams a request body into R2 without holding it in memory, storing it only if it is exactly `size` bytes.
 *
 * The body goes through a FixedLengthStream (R2 needs a known length), fed by a loop that counts the bytes. The
 * chunk that completes the size is held back until the body has ended: a FixedLengthStream given its last byte
 * lets R2 store the object even if more bytes follow (measured with miniflare), so a body longer than declared
 * never hands it over. A body that is too long or too short, or breaks off, aborts the stream: R2 stores nothing
 * (and whatever key it is, is deleted anyway).
 *
 * Request bodies arrive in 4 KiB chunks; the loop reads them in batches of at least READ_AT_LEAST bytes (workerd's
 * `readAtLeast`), which brings its cost near a direct put's (bench/suites/upload.ts).
 *
 * A failure's message is the detail only ("more than 15 bytes"); the route words it for the client.
 */
import { fail, ok, type Failure, type Result } from "../../protocol/result.ts";

export type StoreFailure = Failure<"UPLOAD_BODY_TOO_LARGE" | "UPLOAD_BODY_INCOMPLETE" | "UPLOAD_STORAGE_FAILED">;
export type StoreOutcome = Result<void, StoreFailure>;

export const sessionUploadsPrefix = (sessionId: string) => `sessions/${sessionId}/uploads/`;
export const uploadKey = (sessionId: string, uploadId: string) => `${sessionUploadsPrefix(sessionId)}${uploadId}`;

const READ_AT_LEAST = 64 * 1024;
const READ_BUFFER = 256 * 1024;

export async function storeExactly(
  bucket: R2Bucket,
  key: string,
  body: ReadableStream<Uint8Array> | null,
  size: number,
  options: R2PutOptions,
): Promise<StoreOutcome> {
  const fixed = new FixedLengthStream(size);
  const put = bucket.put(key, fixed.readable, options).then(
    () => undefined,
    (error: unknown) => String(error),
  );
  const pumped = await pump(body, size, fixed.writable.getWriter());
  const putError = await put;
  // A refused write shows as the storage's own error; a body that was fine but not stored, as a storage failure.
  const outcome: StoreOutcome =
    putError === undefined || (!pumped.ok && pumped.error.code !== "UPLOAD_STORAGE_FAILED") ? pumped : fail("UPLOAD_STORAGE_FAILED", putError);
  if (!outcome.ok) await bucket.delete(key).catch(() => undefined);
  return outcome;
}

async function pump(body: ReadableStream<Uint8Array> | null, size: number, writer: WritableStreamDefaultWriter): Promise<StoreOutcome> {
  const source = body ? chunks(body) : undefined;
  let received = 0;
  let last: Uint8Array | undefined; // the chunk that reached `size`, written once the body has ended
  const stop = async (code: StoreFailure["code"], detail: string): Promise<StoreOutcome> => {
    await Promise.all([source?.cancel(), writer.abort(detail).catch(() => undefined)]);
    return fail(code, detail);
  };
  for (;;) {
    let chunk: Uint8Array | undefined;
    try {
      chunk = source && (await source.next());
    } catch (error) {
      return stop("UPLOAD_BODY_INCOMPLETE", `the body broke off after ${received} of ${size} bytes: ${String(error)}`);
    }
    if (chunk === undefined) break;
    if (chunk.byteLength === 0) continue;
    received += chunk.byteLength;
    if (received > size || last) return stop("UPLOAD_BODY_TOO_LARGE", `more than ${size} bytes`);
    if (received === size) last = chunk;
    else if (!(await write(writer, chunk))) return stop("UPLOAD_STORAGE_FAILED", "storage refused the stream");
  }
  if (!last) return stop("UPLOAD_BODY_INCOMPLETE", `the body ended after ${received} of ${size} bytes`);
  if (!(await write(writer, last))) return stop("UPLOAD_STORAGE_FAILED", "storage refused the stream");
  try {
    await writer.close();
    return ok(undefined);
  } catch (error) {
    return fail("UPLOAD_STORAGE_FAILED", String(error));
  }
}

/** The body's bytes in batches (a BYOB reader where the stream is a byte stream), then undefined at its end. */
function chunks(body: ReadableStream<Uint8Array>): { next(): Promise<Uint8Array | undefined>; cancel(): Promise<void> } {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    byob = undefined; // not a byte stream (a body built in-process): plain reads
  }
  const plain = byob ? undefined : body.getReader();
  let ended = false;
  return {
    async next() {
      if (ended) return undefined;
      const result = byob ? await byob.readAtLeast(READ_AT_LEAST, new Uint8Array(READ_BUFFER)) : await plain!.read();
      if (result.done) ended = true; // readAtLeast may hand over the last bytes together with the end
      if (result.value && result.value.byteLength > 0) return result.value;
      return ended ? undefined : new Uint8Array(0);
    },
    cancel: () => (byob ?? plain)!.cancel().catch(() => undefined),
  };
}

async function write(writer: WritableStreamDefaultWriter, chunk: Uint8Array): Promise<boolean> {
  try {
    await writer.write(chunk);
    return true;
  } catch {
    return false;
  }
}

/** Deletes every object stored for a session's uploads (a page of up to 1000 keys per call); returns how many. */
export async function deleteSessionUploads(bucket: R2Bucket, sessionId: string): Promise<number> {
  let deleted = 0;
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: sessionUploadsPrefix(sessionId), cursor });
    const keys = page.objects.map((object) => object.key);
    if (keys.length > 0) await bucket.delete(keys);
    deleted += keys.length;
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return deleted;
}
