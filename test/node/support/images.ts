/** Real image files for upload tests: valid PNGs built in memory, and their SHA-256. */
import { createHash, randomBytes } from "node:crypto";
import { crc32, deflateSync } from "node:zlib";

/**
 * An RGB PNG of `width`×`height`: a gradient, or random pixels with `noise` (which do not compress, so the file's
 * size is about width × height × 3 bytes — how to get a large upload that is still a real image).
 */
export function pngImage(width: number, height: number, options: { noise?: boolean } = {}): Uint8Array<ArrayBuffer> {
  const row = 1 + width * 3;
  const pixels = options.noise ? randomBytes(row * height) : Buffer.alloc(row * height);
  for (let y = 0; y < height; y++) {
    pixels[y * row] = 0; // filter: none
    if (options.noise) continue;
    for (let x = 0; x < width; x++) pixels.set([x & 0xff, y & 0xff, (x ^ y) & 0xff], y * row + 1 + x * 3);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const png = Buffer.concat([
    signature,
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(pixels, { level: options.noise ? 0 : 6 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
  return new Uint8Array(png); // a copy over its own ArrayBuffer: what fetch and Blob take
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

export const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
