/**
 * The demo model's encoder on its own: the ffmpeg and font it takes from npm, the prompt fitted to the frame with
 * the font's own metrics, and every way an encoder cannot start reported once, in one line with its fix.
 */
import { rmSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestPatternEncoder } from "../../runtime/demo/encoder.ts";
import { checkFfmpeg, chooseFfmpeg, EncoderUnavailable, packagedFont } from "../../runtime/demo/ffmpeg.ts";
import { fontMetrics, type FontMetrics } from "../../runtime/demo/font-metrics.ts";
import { drawableText, linesThatFit, prepareText, textWidth, UNDRAWABLE_PROMPT, type TextBox } from "../../runtime/demo/prompt-text.ts";
import { descendants, stillRunning } from "../../tools/procfs.ts";

const font = fontMetrics(packagedFont());
/** The demo's box: 640×360, 28 px DejaVu Sans Bold, 20 px margins. */
const box: TextBox = { metrics: font, fontSize: 28, maxWidth: 600, maxLines: linesThatFit(font, 28, 6, 320) };
const lines = (text: string) => prepareText(text, box).split("\n");

describe("the prompt as drawn", () => {
  it("reads the packaged font: DejaVu Sans Bold's metrics, a glyph for Latin, Cyrillic and ✓, none for emoji or CJK", () => {
    expect(font).toMatchObject({ unitsPerEm: 2048, ascender: 1901, descender: 483 });
    expect(font.advance("W".codePointAt(0)!)).toBe(2259);
    expect(font.advance("i".codePointAt(0)!)).toBe(702);
    for (const char of ["é", "Ж", "✓", "…"]) expect(font.advance(char.codePointAt(0)!), char).toBeGreaterThan(0);
    for (const char of ["🚀", "中", "👍"]) expect(font.advance(char.codePointAt(0)!), char).toBeUndefined();
    expect(box.maxLines).toBe(8); // 33 px lines, 6 px apart, in 320 px
  });

  it("wraps at spaces to the frame's width, measured in pixels, not characters", () => {
    expect(lines("a red fox jumps over the lazy dog and keeps running far away")).toEqual([
      "a red fox jumps over the lazy dog",
      "and keeps running far away",
    ]);
    expect(textWidth("a red fox jumps over the lazy dog and", box)).toBeGreaterThan(600); // 32 characters, but too wide
    const wide = lines("WWWWWWWW ".repeat(8).trim());
    expect(wide.length).toBeGreaterThan(3);
    for (const line of wide) expect(textWidth(line, box)).toBeLessThanOrEqual(600);
    expect(lines("one\ntwo\r\nthree")).toEqual(["one", "two", "three"]);
  });

  it("splits a word wider than the frame, keeps every line inside it, and ends an overflow with an ellipsis", () => {
    const noSpaces = lines("W".repeat(200)); // 200 × 31 px: ten lines' worth
    expect(noSpaces).toHaveLength(8);
    for (const line of noSpaces) expect(textWidth(line, box)).toBeLessThanOrEqual(600);
    expect(noSpaces.slice(0, 7).every((line) => /^W{19}$/.test(line))).toBe(true); // 19 × 31 px = 589 px
    expect(noSpaces[7]).toMatch(/^W+…$/);
    expect(lines("i".repeat(200))).toEqual(["i".repeat(60), "i".repeat(60), "i".repeat(60), "i".repeat(20)]); // 10 px each
  });

  it("drops what the font cannot draw — emoji, variation selectors, joiners, control characters — and composes accents", () => {
    expect(drawableText("a cat 🚀 on a roof 👍🏽, ❤️ e\u0301 zero\u200Bwidth\u0007 tab\there", font)).toBe("a cat on a roof , ❤ é zerowidth tab here");
    expect(drawableText("flags 🇫🇷 and 中文 and 👨‍👩‍👧", font)).toBe("flags and and");
    expect(drawableText("line\u2028separated\u0085too", font)).toBe("line\nseparated\ntoo");
    expect(prepareText("🚀🚀🚀", box)).toBe(UNDRAWABLE_PROMPT); // something visible was sent: say so
    expect(prepareText("  \n ", box)).toBe("");
  });

  it("measures with any font's metrics (a font without a character drops it)", () => {
    const fixed: FontMetrics = { unitsPerEm: 10, ascender: 8, descender: 2, advance: (code) => (code === 0x78 ? undefined : 10) };
    const tiny: TextBox = { metrics: fixed, fontSize: 10, maxWidth: 50, maxLines: 2 };
    expect(prepareText("abcdefghijkl", tiny)).toBe("abcde\nfghi…");
    expect(prepareText("ab xx cd", tiny)).toBe("ab cd");
    expect(linesThatFit(fixed, 10, 5, 40)).toBe(3); // 10 px lines, 5 px apart: 10 + 5 + 10 + 5 + 10 = 40
  });
});

describe("the ffmpeg it runs", () => {
  it("is the static build from npm, with libvpx and drawtext, unless another is asked for", () => {
    const packaged = chooseFfmpeg();
    expect(packaged.source).toBe("package");
    expect(checkFfmpeg(packaged)).toMatch(/node_modules\/@ffmpeg-installer\/linux-x64\/ffmpeg$/);
    expect(packagedFont()).toMatch(/node_modules\/dejavu-fonts-ttf\/ttf\/DejaVuSans-Bold\.ttf$/);
    expect(chooseFfmpeg("ffmpeg", "--ffmpeg")).toEqual({ command: "ffmpeg", source: "--ffmpeg" });
  });

  it("refuses one that cannot run, before spawning anything, with the cause and the fix for where it came from", () => {
    const refusal = (command: string, source: "--ffmpeg" | "REACTOR_FFMPEG") => {
      try {
        checkFfmpeg(chooseFfmpeg(command, source));
      } catch (error) {
        expect(error).toBeInstanceOf(EncoderUnavailable);
        return (error as Error).message;
      }
      throw new Error(`${command} was accepted`);
    };
    expect(refusal("/nonexistent", "--ffmpeg")).toBe(
      "demo encoder: cannot start ffmpeg at /nonexistent (ENOENT: no such file): fix --ffmpeg <path>, or leave it out to use the packaged ffmpeg",
    );
    const notExecutable = path.join(tmpdir(), `not-executable-${process.pid}`);
    writeFileSync(notExecutable, "", { mode: 0o644 });
    try {
      expect(refusal(notExecutable, "REACTOR_FFMPEG")).toBe(
        `demo encoder: cannot start ffmpeg at ${notExecutable} (EACCES: not executable): fix REACTOR_FFMPEG, or unset it to use the packaged ffmpeg`,
      );
    } finally {
      rmSync(notExecutable);
    }
    expect(refusal("/tmp", "--ffmpeg")).toMatch(/^demo encoder: cannot start ffmpeg at \/tmp \(EISDIR: not a file\): fix --ffmpeg/);
    expect(refusal("no-such-ffmpeg-anywhere", "--ffmpeg")).toMatch(
      /^demo encoder: cannot start ffmpeg "no-such-ffmpeg-anywhere" \(ENOENT: not found on PATH\)/,
    );
    expect(() => checkFfmpeg({ command: undefined, source: "package", problem: "Unsupported platform/architecture: plan9-mips" })).toThrow(
      "demo encoder: no packaged ffmpeg for linux-x64 (Unsupported platform/architecture: plan9-mips): reinstall with `npm ci` or pass --ffmpeg <path>",
    );
  });
});

describe("an encoder that cannot start", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "fake-ffmpeg-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** An executable script standing in for ffmpeg. */
  async function fakeFfmpeg(name: string, body: string): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  }

  /** Starts an encoder with `ffmpeg`; resolves with its failures once one came (or after `waitMs`). */
  async function failures(ffmpeg: string, options: { firstFrameTimeoutMs?: number; waitMs?: number } = {}) {
    const seen: Error[] = [];
    let packets = 0;
    const encoder = await TestPatternEncoder.start({
      text: "hello",
      ffmpeg: chooseFfmpeg(ffmpeg, "--ffmpeg"),
      firstFrameTimeoutMs: options.firstFrameTimeoutMs,
      log: () => undefined,
      onPacket: () => packets++,
      onFailure: (error) => seen.push(error),
    });
    const deadline = Date.now() + (options.waitMs ?? 10_000);
    while (seen.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 300)); // a second report would come now
    await encoder.stop();
    return { seen: seen.map((error) => error.message), packets };
  }

  it("throws at once when the binary is missing: nothing is spawned", async () => {
    const before = descendants(process.pid);
    await expect(
      TestPatternEncoder.start({
        text: "x",
        ffmpeg: chooseFfmpeg("/nonexistent/ffmpeg", "--ffmpeg"),
        log: () => undefined,
        onPacket: () => undefined,
      }),
    ).rejects.toThrow(/^demo encoder: cannot start ffmpeg at \/nonexistent\/ffmpeg \(ENOENT: no such file\): fix --ffmpeg/);
    expect(descendants(process.pid).length).toBe(before.length);
  });

  it("reports an ffmpeg that exits before its first frame once, quoting its last words, and does not restart it", async () => {
    const ffmpeg = await fakeFfmpeg("exits", `echo "Unknown encoder 'libvpx'" >&2; echo started >> ${dir}/starts; exit 1`);
    const { seen } = await failures(ffmpeg);
    expect(seen).toEqual([
      `demo encoder: ffmpeg at ${ffmpeg} exited (code 1) before its first frame: "Unknown encoder 'libvpx'": fix --ffmpeg <path>, or leave it out to use the packaged ffmpeg`,
    ]);
    expect((await readFile(path.join(dir, "starts"), "utf8")).trim().split("\n")).toHaveLength(1);
  });

  it("reports one that sends no video in time, and stops it", async () => {
    const ffmpeg = await fakeFfmpeg("silent", "exec sleep 300");
    const before = descendants(process.pid);
    const { seen } = await failures(ffmpeg, { firstFrameTimeoutMs: 1000 });
    expect(seen).toEqual([
      `demo encoder: ffmpeg at ${ffmpeg} sent no video within 1 s: fix --ffmpeg <path>, or leave it out to use the packaged ffmpeg`,
    ]);
    const sleeping = descendants(process.pid).filter((info) => info.command === "sleep" && !before.some((old) => old.pid === info.pid));
    expect(stillRunning(sleeping)).toEqual([]);
  });

  it("the packaged ffmpeg starts, with an ffmpeg on PATH that fails as a missing one: key frames arrive, no failure", async () => {
    const shims = path.join(dir, "shims");
    await mkdir(shims);
    await writeFile(path.join(shims, "ffmpeg"), '#!/bin/sh\necho "ffmpeg: not found" >&2\nexit 127\n', { mode: 0o755 });
    const pathBefore = process.env.PATH;
    process.env.PATH = `${shims}${path.delimiter}${pathBefore ?? ""}`;
    const seen: Error[] = [];
    let packets = 0;
    const encoder = await TestPatternEncoder.start({
      text: "W".repeat(200),
      log: () => undefined,
      onPacket: () => packets++,
      onFailure: (error) => seen.push(error),
    });
    process.env.PATH = pathBefore;
    try {
      const deadline = Date.now() + 15_000;
      while (packets < 10 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(packets).toBeGreaterThanOrEqual(10);
      expect(seen).toEqual([]);
    } finally {
      await encoder.stop();
    }
  });
});
