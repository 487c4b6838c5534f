/**
 * The demo model's video: ffmpeg renders a moving test pattern with a text drawn into it, encodes it as VP8 in
 * real time and sends RTP to a local UDP port, where each packet goes to the session's video output. The recipe
 * and its measurements are in docs/media-recipe.md; which ffmpeg and font it uses, in ffmpeg.ts.
 *
 * ffmpeg runs under the project's tether (scripts/lib/tether.ts), as the leader of its own process group: if the
 * agent dies, however it dies, the encoder goes with it. The text changes by writing a new file and renaming it
 * over the one ffmpeg re-reads every frame (rewriting it in place crashed ffmpeg). ffmpeg runs in the encoder's
 * temporary directory and names the text and font files there relatively, so no path needs escaping in its
 * filter graph.
 *
 * An encoder has started once its first key frame arrives. Until then any failure — ffmpeg missing or not
 * executable, exiting (a build without libvpx, say), or no key frame within `firstFrameTimeoutMs` — is final and
 * reported once through `onFailure` as an EncoderUnavailable (one line: cause and fix). After it, an unexpected
 * exit restarts ffmpeg, up to MAX_RESTARTS_PER_MINUTE.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { copyFile, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { stopGroup } from "../../scripts/lib/process-group.ts";
import { errorText, type Log } from "../log.ts";
import { rtpFields, startsVp8KeyFrame } from "../media/rtp.ts";
import { checkFfmpeg, chooseFfmpeg, describeFfmpeg, encoderUnavailable, type FfmpegChoice, packagedFont } from "./ffmpeg.ts";
import { fontMetrics } from "./font-metrics.ts";
import { linesThatFit, prepareText, type TextBox } from "./prompt-text.ts";

const TETHER = fileURLToPath(new URL("../../scripts/lib/tether.ts", import.meta.url));
/** The text's distance from the frame's edges (drawtext x/y), its box's border, and the space between lines. */
const MARGIN = 20;
const BOX_BORDER = 10;
const LINE_SPACING = 6;
/** Unexpected exits tolerated per minute, once running, before the encoder gives up. */
const MAX_RESTARTS_PER_MINUTE = 3;
/** From spawn to the first key frame: 0.2–0.4 s on a quiet machine, ~1 s on a busy one. */
const FIRST_FRAME_TIMEOUT_MS = 10_000;
/** ffmpeg's last lines on stderr, quoted when it fails. */
const STDERR_LINES_KEPT = 5;

export interface TestPatternOptions {
  width?: number;
  height?: number;
  fps?: number;
  bitrateKbps?: number;
  /** The first text drawn. */
  text: string;
  /** Each RTP packet (VP8), as ffmpeg sent it. */
  onPacket(packet: Buffer): void;
  /** The encoder cannot start, or kept crashing and gave up: an EncoderUnavailable (cause and fix), once. */
  onFailure?(error: Error): void;
  log: Log;
  /** Which ffmpeg (default: the packaged one, ffmpeg.ts). */
  ffmpeg?: FfmpegChoice;
  /** The .ttf drawtext uses (default: the packaged DejaVu Sans Bold). */
  fontFile?: string;
  firstFrameTimeoutMs?: number;
}

export class TestPatternEncoder {
  readonly #options: TestPatternOptions;
  readonly #ffmpeg: FfmpegChoice & { command: string };
  readonly #dir: string;
  readonly #udp: Socket;
  readonly #box: TextBox;
  #child: ChildProcess | undefined;
  #stopping: Promise<void> | undefined;
  #exits: number[] = [];
  #restartTimer: NodeJS.Timeout | undefined;
  #firstFrameTimer: NodeJS.Timeout | undefined;
  #started = false;
  #failed = false;
  #stderr: string[] = [];
  #textWrites = 0;

  private constructor(options: TestPatternOptions, ffmpeg: FfmpegChoice & { command: string }, dir: string, udp: Socket, box: TextBox) {
    this.#options = options;
    this.#ffmpeg = ffmpeg;
    this.#dir = dir;
    this.#udp = udp;
    this.#box = box;
  }

  /**
   * Starts the encoder; packets flow to `onPacket` from its first key frame on. Throws an EncoderUnavailable when
   * ffmpeg cannot be run at all; later failures go to `onFailure`.
   */
  static async start(options: TestPatternOptions): Promise<TestPatternEncoder> {
    const choice = options.ffmpeg ?? chooseFfmpeg();
    const ffmpeg = { ...choice, command: checkFfmpeg(choice) };
    const fontFile = options.fontFile ?? packagedFont();
    const box = textBox(fontFile, options.width ?? 640, options.height ?? 360);
    const dir = await mkdtemp(path.join(tmpdir(), "reactor-demo-"));
    const udp = createSocket("udp4");
    try {
      await linkFont(fontFile, path.join(dir, "font.ttf"));
      await writeFile(path.join(dir, "text.txt"), prepareText(options.text, box));
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(0, "127.0.0.1", () => resolve());
      });
    } catch (error) {
      udp.close();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    const encoder = new TestPatternEncoder(options, ffmpeg, dir, udp, box);
    udp.on("message", (packet) => encoder.#onPacket(packet));
    udp.on("error", (error) => options.log("warn", `encoder UDP socket: ${errorText(error)}`));
    encoder.#spawn();
    return encoder;
  }

  /** The process group of the running encoder (its tether's pid), for accounting; undefined when stopped. */
  get processGroup(): number | undefined {
    return this.#child?.pid;
  }

  /** Draws `text` from the next frame on (prepared to fit: prompt-text.ts). */
  async setText(text: string): Promise<void> {
    const next = path.join(this.#dir, `text.${++this.#textWrites}.tmp`);
    await writeFile(next, prepareText(text, this.#box));
    await rename(next, path.join(this.#dir, "text.txt"));
  }

  /** Stops ffmpeg (its whole process group), closes the socket, removes the text file. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#restartTimer);
      clearTimeout(this.#firstFrameTimer);
      const child = this.#child;
      this.#child = undefined;
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) await stopGroup(child.pid, 2000);
      this.#udp.close();
      await rm(this.#dir, { recursive: true, force: true });
    })();
    return this.#stopping;
  }

  #onPacket(packet: Buffer): void {
    if (this.#failed) return;
    if (!this.#started) {
      const fields = rtpFields(packet);
      if (!fields || !startsVp8KeyFrame(packet, fields.payloadOffset)) return;
      this.#started = true;
      clearTimeout(this.#firstFrameTimer);
      this.#options.log("debug", `encoder: first key frame after ${Math.round(performance.now() - this.#spawnedAt)} ms`);
    }
    this.#options.onPacket(packet);
  }

  #spawnedAt = 0;

  #spawn(): void {
    const { log } = this.#options;
    const args = ffmpegArgs({ ...this.#options, textFile: "text.txt", fontFile: "font.ttf", port: this.#udp.address().port });
    // The tether leads the group and holds our pipe as its lifeline (see scripts/lib/tether.ts).
    const child = spawn(process.execPath, [TETHER, this.#ffmpeg.command, ...args], {
      cwd: this.#dir,
      stdio: ["pipe", "ignore", "pipe"],
      detached: true,
    });
    this.#child = child;
    this.#spawnedAt = performance.now();
    this.#stderr = [];
    createInterface({ input: child.stderr! }).on("line", (line) => {
      this.#stderr = [...this.#stderr.slice(1 - STDERR_LINES_KEPT), line];
      log("debug", `ffmpeg: ${line}`);
    });
    child.once("error", (error) => this.#fail(`cannot start the tether for ${describeFfmpeg(this.#ffmpeg)} (${errorText(error)})`));
    child.once("exit", (code, signal) => {
      if (this.#child !== child) return; // stopped on purpose
      this.#child = undefined;
      // Let the last stderr lines arrive: they usually say why.
      setTimeout(() => this.#onUnexpectedExit(signal ?? `code ${code}`), 50);
    });
    if (!this.#started) {
      const timeoutMs = this.#options.firstFrameTimeoutMs ?? FIRST_FRAME_TIMEOUT_MS;
      clearTimeout(this.#firstFrameTimer);
      this.#firstFrameTimer = setTimeout(
        () => this.#fail(`${describeFfmpeg(this.#ffmpeg)} sent no video within ${timeoutMs / 1000} s${this.#lastWords()}`),
        timeoutMs,
      );
    }
  }

  #onUnexpectedExit(how: string): void {
    if (this.#stopping || this.#failed) return;
    if (!this.#started) return this.#fail(`${describeFfmpeg(this.#ffmpeg)} exited (${how}) before its first frame${this.#lastWords()}`);
    const now = Date.now();
    this.#exits = [...this.#exits.filter((at) => now - at < 60_000), now];
    if (this.#exits.length > MAX_RESTARTS_PER_MINUTE) {
      return this.#fail(`${describeFfmpeg(this.#ffmpeg)} exited (${how}) ${this.#exits.length} times in a minute${this.#lastWords()}`);
    }
    this.#options.log("warn", `demo encoder: ffmpeg exited (${how}); restarting it`);
    this.#restartTimer = setTimeout(() => {
      if (!this.#stopping) this.#spawn();
    }, 500);
  }

  /** Final: stops ffmpeg and tells the owner once. */
  #fail(cause: string): void {
    if (this.#failed || this.#stopping) return;
    this.#failed = true;
    clearTimeout(this.#firstFrameTimer);
    const child = this.#child;
    this.#child = undefined;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) void stopGroup(child.pid, 2000).catch(() => undefined);
    this.#options.onFailure?.(encoderUnavailable(this.#ffmpeg, cause));
  }

  /** `: "<ffmpeg's last stderr line>"`, if it said anything. */
  #lastWords(): string {
    const last = this.#stderr.findLast((line) => line.trim() !== "");
    return last ? `: "${last.trim().slice(0, 200)}"` : "";
  }
}

/** Where the prompt may go: the frame less the margins and the box's border, at the size ffmpegArgs() draws. */
function textBox(fontFile: string, width: number, height: number): TextBox {
  const metrics = fontMetrics(fontFile);
  const fontSize = fontSizeFor(height);
  const inset = 2 * MARGIN;
  return { metrics, fontSize, maxWidth: width - inset, maxLines: linesThatFit(metrics, fontSize, LINE_SPACING, height - inset) };
}

const fontSizeFor = (height: number) => Math.round(height / 13);

/** A symbolic link to the font where the platform allows one, else a copy (~700 KB). */
async function linkFont(from: string, to: string): Promise<void> {
  await symlink(from, to).catch(() => copyFile(from, to));
}

/** The encoder's command line; `fontFile` defaults to the packaged font's absolute path. */
export function ffmpegArgs(options: {
  width?: number;
  height?: number;
  fps?: number;
  bitrateKbps?: number;
  textFile: string;
  fontFile?: string;
  port: number;
}): string[] {
  const { width = 640, height = 360, fps = 30, bitrateKbps = 1000, fontFile = packagedFont() } = options;
  for (const file of [options.textFile, fontFile]) {
    if (!/^[\w/.-]+$/.test(file)) throw new Error(`a file named in the filter graph must not need escaping: ${file}`);
  }
  const draw =
    `drawtext=textfile=${options.textFile}:reload=1:expansion=none:fontfile=${fontFile}:fontsize=${fontSizeFor(height)}` +
    `:fontcolor=white:box=1:boxcolor=black:boxborderw=${BOX_BORDER}:line_spacing=${LINE_SPACING}:x=${MARGIN}:y=${MARGIN}`;
  const bitrate = `${bitrateKbps}k`;
  return [
    ...["-hide_banner", "-loglevel", "warning", "-nostats", "-nostdin"],
    ...["-re", "-f", "lavfi", "-i", `testsrc=size=${width}x${height}:rate=${fps},${draw},format=yuv420p`],
    ...["-an", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-auto-alt-ref", "0", "-error-resilient", "1"],
    ...[
      "-g",
      String(fps),
      "-keyint_min",
      String(fps),
      "-b:v",
      bitrate,
      "-maxrate",
      bitrate,
      "-bufsize",
      bitrate,
      "-undershoot-pct",
      "95",
      "-threads",
      "1",
    ],
    ...["-f", "rtp", "-payload_type", "96", `rtp://127.0.0.1:${options.port}?pkt_size=1200`],
  ];
}
