import { ApiError } from "../errors.ts";

export const MAX_JSON_BODY_BYTES = 256 * 1024;

/**
 * Reads a JSON body, refusing oversized ones before reading them (by Content-Length) and while reading them (for
 * chunked bodies). An empty body yields undefined when `optional`, INVALID_JSON otherwise.
 */
export async function readJson(
  request: Request,
  { optional = false, maxBytes = MAX_JSON_BODY_BYTES }: { optional?: boolean; maxBytes?: number } = {},
): Promise<unknown> {
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const text = await readText(request, maxBytes);
  if (text.trim() === "") {
    if (optional) return undefined;
    throw new ApiError("INVALID_JSON", "A JSON body is required.");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError("INVALID_JSON", `The request body is not valid JSON: ${(error as Error).message}`);
  }
}

async function readText(request: Request, maxBytes: number): Promise<string> {
  if (!request.body) return "";
  const reader = request.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    received += value.byteLength;
    if (received > maxBytes) {
      await reader.cancel();
      throw tooLarge(maxBytes);
    }
    text += decoder.decode(value, { stream: true });
  }
}

const tooLarge = (maxBytes: number) => new ApiError("PAYLOAD_TOO_LARGE", `JSON bodies are limited to ${maxBytes} bytes.`);
