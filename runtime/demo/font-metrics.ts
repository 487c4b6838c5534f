/**
 * Just enough of a TrueType font (the `head`, `hhea`, `hmtx` and `cmap` tables) to know, before ffmpeg draws a
 * prompt, which characters the font has a glyph for and how wide each one is: the demo model wraps and trims the
 * prompt to the frame with these numbers (prompt-text.ts) instead of guessing from a character count.
 */
import { readFileSync } from "node:fs";

export interface FontMetrics {
  unitsPerEm: number;
  /** Above and below the baseline (`hhea`; descender positive), in font units. */
  ascender: number;
  descender: number;
  /** The advance width of a character's glyph in font units; undefined when the font has no glyph for it. */
  advance(codePoint: number): number | undefined;
}

const cache = new Map<string, FontMetrics>();

/** The metrics of a .ttf file, read once per path. */
export function fontMetrics(file: string): FontMetrics {
  let metrics = cache.get(file);
  if (!metrics) {
    metrics = parseTrueType(readFileSync(file));
    cache.set(file, metrics);
  }
  return metrics;
}

export function parseTrueType(font: Buffer): FontMetrics {
  const tables = tableOffsets(font);
  const table = (tag: string) => {
    const offset = tables.get(tag);
    if (offset === undefined) throw new Error(`not a usable TrueType font: no ${tag} table`);
    return offset;
  };
  const head = table("head");
  const hhea = table("hhea");
  const hmtx = table("hmtx");
  const unitsPerEm = font.readUInt16BE(head + 18);
  const ascender = font.readInt16BE(hhea + 4);
  const descender = -font.readInt16BE(hhea + 6);
  const longMetrics = font.readUInt16BE(hhea + 34);
  // Glyphs past the last long metric share its advance.
  const advanceOf = (glyph: number) => font.readUInt16BE(hmtx + 4 * Math.min(glyph, longMetrics - 1));
  const glyphs = characterMap(font, table("cmap"));
  return {
    unitsPerEm,
    ascender,
    descender,
    advance(codePoint) {
      const glyph = glyphs.get(codePoint);
      return glyph ? advanceOf(glyph) : undefined; // glyph 0 is .notdef: the empty box
    },
  };
}

function tableOffsets(font: Buffer): Map<string, number> {
  const count = font.readUInt16BE(4);
  const tables = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const record = 12 + 16 * i;
    tables.set(font.toString("latin1", record, record + 4), font.readUInt32BE(record + 8));
  }
  return tables;
}

/** Code point → glyph id, from the best Unicode subtable: format 12 (full Unicode) if present, else format 4 (BMP). */
function characterMap(font: Buffer, cmap: number): Map<number, number> {
  const subtables: { platform: number; encoding: number; offset: number; format: number }[] = [];
  for (let i = 0; i < font.readUInt16BE(cmap + 2); i++) {
    const record = cmap + 4 + 8 * i;
    const offset = cmap + font.readUInt32BE(record + 4);
    subtables.push({ platform: font.readUInt16BE(record), encoding: font.readUInt16BE(record + 2), offset, format: font.readUInt16BE(offset) });
  }
  const unicode = (table: (typeof subtables)[number]) =>
    table.platform === 0 || (table.platform === 3 && (table.encoding === 1 || table.encoding === 10));
  const full = subtables.find((table) => unicode(table) && table.format === 12);
  if (full) return format12(font, full.offset);
  const bmp = subtables.find((table) => unicode(table) && table.format === 4);
  if (bmp) return format4(font, bmp.offset);
  throw new Error("not a usable TrueType font: no Unicode character map (format 4 or 12)");
}

function format12(font: Buffer, offset: number): Map<number, number> {
  const map = new Map<number, number>();
  const groups = font.readUInt32BE(offset + 12);
  for (let i = 0; i < groups; i++) {
    const group = offset + 16 + 12 * i;
    const first = font.readUInt32BE(group);
    const last = font.readUInt32BE(group + 4);
    const glyph = font.readUInt32BE(group + 8);
    for (let code = first; code <= last; code++) map.set(code, glyph + code - first);
  }
  return map;
}

function format4(font: Buffer, offset: number): Map<number, number> {
  const map = new Map<number, number>();
  const segments = font.readUInt16BE(offset + 6) / 2;
  const ends = offset + 14;
  const starts = ends + 2 * segments + 2;
  const deltas = starts + 2 * segments;
  const rangeOffsets = deltas + 2 * segments;
  for (let i = 0; i < segments; i++) {
    const end = font.readUInt16BE(ends + 2 * i);
    const start = font.readUInt16BE(starts + 2 * i);
    const delta = font.readInt16BE(deltas + 2 * i);
    const rangeOffset = font.readUInt16BE(rangeOffsets + 2 * i);
    for (let code = start; code <= end && code !== 0xffff; code++) {
      let glyph: number;
      if (rangeOffset === 0) glyph = (code + delta) & 0xffff;
      else {
        const at = rangeOffsets + 2 * i + rangeOffset + 2 * (code - start);
        glyph = font.readUInt16BE(at);
        if (glyph !== 0) glyph = (glyph + delta) & 0xffff;
      }
      if (glyph !== 0) map.set(code, glyph);
    }
  }
  return map;
}
