/**
 * The prompt as the demo model draws it: only characters the font can draw, wrapped to the frame's width and cut
 * to its height with an ellipsis. ffmpeg's drawtext neither wraps nor falls back to another font: a long word runs
 * off the frame, and a character without a glyph (an emoji, a pictograph) becomes an empty box. So the text is
 * prepared here, measured with the font's own advance widths (font-metrics.ts), before ffmpeg sees it.
 */
import type { FontMetrics } from "./font-metrics.ts";

export interface TextBox {
  metrics: FontMetrics;
  /** Font size in pixels (drawtext's `fontsize`: one em). */
  fontSize: number;
  /** Width available to a line, in pixels. */
  maxWidth: number;
  /** Lines that fit. */
  maxLines: number;
}

/** Drawn instead of a prompt that had visible characters, none of which the font has. */
export const UNDRAWABLE_PROMPT = "(no drawable characters)";
const ELLIPSIS = "…";

/** Lines of `height` px, `spacing` px apart (drawtext's `line_spacing`), that fit in `available` px. */
export function linesThatFit(metrics: FontMetrics, fontSize: number, spacing: number, available: number): number {
  const lineHeight = Math.ceil(((metrics.ascender + metrics.descender) * fontSize) / metrics.unitsPerEm);
  return Math.max(1, Math.floor((available + spacing) / (lineHeight + spacing)));
}

/** The text to write into drawtext's text file: drawable characters only, wrapped at spaces, trimmed to the box. */
export function prepareText(text: string, box: TextBox): string {
  const cleaned = drawableText(text, box.metrics);
  if (cleaned.trim() === "") return /\S/u.test(text) ? fitLine(UNDRAWABLE_PROMPT, box) : "";
  const lines = cleaned.split("\n").flatMap((paragraph) => wrapParagraph(paragraph, box));
  if (lines.length <= box.maxLines) return lines.join("\n");
  const kept = lines.slice(0, box.maxLines);
  kept[kept.length - 1] = withEllipsis(kept[kept.length - 1]!, box);
  return kept.join("\n");
}

/**
 * Composed (NFC) text without what the font cannot draw: control and format characters (tabs and other spaces
 * become a space; line and paragraph separators a newline), variation selectors, and every character the font
 * has no glyph for. Runs of spaces collapse to one, and lines are trimmed.
 */
export function drawableText(text: string, metrics: FontMetrics): string {
  let out = "";
  for (const char of text.normalize("NFC").replace(/\r\n?|[\u2028\u2029\u0085]/g, "\n")) {
    if (char === "\n") out += "\n";
    else if (/[\t\p{Zs}]/u.test(char)) out += " ";
    // biome-ignore lint/suspicious/noMisleadingCharacterClass: `char` is one code point, so a lone variation selector (U+FE00–FE0F, U+E0100–E01EF) is what this drops.
    else if (/[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\uFE00-\uFE0F\u{E0100}-\u{E01EF}]/u.test(char)) continue;
    else if (metrics.advance(char.codePointAt(0)!) !== undefined) out += char;
  }
  return out
    .split("\n")
    .map((line) => line.replace(/ {2,}/g, " ").trim())
    .join("\n")
    .replace(/^\n+|\n+$/g, "");
}

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** Width in pixels as drawn: each glyph's advance rounded up to a whole pixel, as hinting may round it. */
export function textWidth(text: string, box: Pick<TextBox, "metrics" | "fontSize">): number {
  let width = 0;
  for (const char of text) width += Math.ceil(((box.metrics.advance(char.codePointAt(0)!) ?? 0) * box.fontSize) / box.metrics.unitsPerEm);
  return width;
}

/** Greedy: as many words per line as fit; a word wider than a line is split between characters (graphemes). */
function wrapParagraph(paragraph: string, box: TextBox): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of paragraph.split(" ").filter(Boolean)) {
    const joined = line ? `${line} ${word}` : word;
    if (textWidth(joined, box) <= box.maxWidth) {
      line = joined;
      continue;
    }
    if (line) lines.push(line);
    line = "";
    for (const { segment } of graphemes.segment(word)) {
      if (line && textWidth(line + segment, box) > box.maxWidth) {
        lines.push(line);
        line = "";
      }
      line += segment;
    }
  }
  lines.push(line);
  return lines;
}

/** The line with an ellipsis at its end, characters dropped from the end until both fit. */
function withEllipsis(line: string, box: TextBox): string {
  const parts = [...graphemes.segment(line)].map(({ segment }) => segment);
  while (parts.length > 0 && textWidth(`${parts.join("").trimEnd()}${ELLIPSIS}`, box) > box.maxWidth) parts.pop();
  return `${parts.join("").trimEnd()}${ELLIPSIS}`;
}

/** One line: the text itself if it fits, else cut with an ellipsis. */
function fitLine(text: string, box: TextBox): string {
  return textWidth(text, box) <= box.maxWidth ? text : withEllipsis(text, box);
}
