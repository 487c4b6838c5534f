/**
 * The demo model's video: ffmpeg renders a moving test pattern with a text drawn into it, encodes it as VP8 in
 * real time and sends RTP to a local UDP port, where each packet goes to the session's video output. The recipe
 * and its measurements are in docs/media-recipe.md.
 *
 * ffmpeg runs under the project's tether (scripts/lib/tether.ts), as the leader of its own process group: if the
 * agent dies, however it dies, the encoder goes with it. The text changes by writing a new file and renaming it
 * over the one ffmpeg re-reads every frame (rewriting it in place crashed ffmpeg).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { existsSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { stopGroup } from "../../scripts/lib/process-group.ts";
import { errorText, type Log } from "../log.ts";

const TETHER = fileURLToPath(new URL("../../scripts/lib/tether.ts", import.meta.url));
const FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
/** Characters per line of drawn text at the default size (fits 640 px). */
const LINE_CHARS = 32;
/** Unexpected exits tolerated per minute before the encoder gives up. */
const MAX_RESTARTS_PER_MINUTE = 3;

export interface TestPatternOptions {
  width?: number;
  height?: number;
  fps?: number;
  bitrateKbps?: number;
  /** The first text drawn. */
  text: string;
  /** Each RTP packet (VP8), as ffmpeg sent it. */
  onPacket(packet: Buffer): void;
  /** The encoder kept crashing and gave up. */
  onFailure?(error: Error): void;
  log: Log;
  ffmpegPath?: string;
}

export class TestPatternEncoder {
  readonly #options: TestPatternOptions;
  readonly #dir: string;
  readonly #udp: Socket;
  #child: ChildProcess | undefined;
  #stopping: Promise<void> | undefined;
  #exits: number[] = [];
  #restartTimer: NodeJS.Timeout | undefined;
  #textWrites = 0;

  private constructor(options: TestPatternOptions, dir: string, udp: Socket) {
    this.#options = options;
    this.#dir = dir;
    this.#udp = udp;
  }

  /** Starts the encoder; packets flow to `onPacket` from then on. */
  static async start(options: TestPatternOptions): Promise<TestPatternEncoder> {
    const dir = await mkdtemp(path.join(tmpdir(), "reactor-demo-"));
    const udp = createSocket("udp4");
    try {
      await writeFile(path.join(dir, "text.txt"), wrapText(options.text));
      await new Promise<void>((resolve, reject) => {
        udp.once("error", reject);
        udp.bind(0, "127.0.0.1", () => resolve());
      });
    } catch (error) {
      udp.close();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    const spawned = performance.now();
    let first = true;
    udp.on("message", (packet) => {
      if (first) {
        first = false;
        options.log("debug", `encoder: first RTP packet ${Math.round(performance.now() - spawned)} ms after start`);
      }
      options.onPacket(packet);
    });
    udp.on("error", (error) => options.log("warn", `encoder UDP socket: ${errorText(error)}`));
    const encoder = new TestPatternEncoder(options, dir, udp);
    encoder.#spawn();
    return encoder;
  }

  /** The process group of the running encoder (its tether's pid), for accounting; undefined when stopped. */
  get processGroup(): number | undefined {
    return this.#child?.pid;
  }

  /** Draws `text` from the next frame on. */
  async setText(text: string): Promise<void> {
    const next = path.join(this.#dir, `text.${++this.#textWrites}.tmp`);
    await writeFile(next, wrapText(text));
    await rename(next, path.join(this.#dir, "text.txt"));
  }

  /** Stops ffmpeg (its whole process group), closes the socket, removes the text file. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#restartTimer);
      const child = this.#child;
      this.#child = undefined;
      if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) await stopGroup(child.pid, 2000);
      this.#udp.close();
      await rm(this.#dir, { recursive: true, force: true });
    })();
    return this.#stopping;
  }

  #spawn(): void {
    const { log } = this.#options;
    const port = this.#udp.address().port;
    const args = ffmpegArgs({ ...this.#options, textFile: path.join(this.#dir, "text.txt"), port });
    // The tether leads the group and holds our pipe as its lifeline (see scripts/lib/tether.ts).
    const child = spawn(process.execPath, [TETHER, this.#options.ffmpegPath ?? "ffmpeg", ...args], {
      stdio: ["pipe", "ignore", "pipe"],
      detached: true,
    });
    this.#child = child;
    createInterface({ input: child.stderr! }).on("line", (line) => log("debug", `ffmpeg: ${line}`));
    child.once("error", (error) => log("error", `cannot start ffmpeg: ${errorText(error)}`));
    child.once("exit", (code, signal) => {
      if (this.#child !== child) return; // stopped on purpose
      this.#child = undefined;
      this.#onUnexpectedExit(new Error(`ffmpeg exited (${signal ?? `code ${code}`})`));
    });
  }

  #onUnexpectedExit(error: Error): void {
    const now = Date.now();
    this.#exits = [...this.#exits.filter((at) => now - at < 60_000), now];
    if (this.#exits.length > MAX_RESTARTS_PER_MINUTE) {
      this.#options.log("error", `${error.message}; giving up after ${MAX_RESTARTS_PER_MINUTE} restarts in a minute`);
      this.#options.onFailure?.(error);
      return;
    }
    this.#options.log("warn", `${error.message}; restarting it`);
    this.#restartTimer = setTimeout(() => {
      if (!this.#stopping) this.#spawn();
    }, 500);
  }
}

export function ffmpegArgs(options: { width?: number; height?: number; fps?: number; bitrateKbps?: number; textFile: string; port: number }): string[] {
  const { width = 640, height = 360, fps = 30, bitrateKbps = 1000 } = options;
  if (!/^[\w/.-]+$/.test(options.textFile)) throw new Error(`the text file path must not need escaping in a filter graph: ${options.textFile}`);
  const font = existsSync(FONT) ? `fontfile=${FONT}:` : "";
  const draw = `drawtext=textfile=${options.textFile}:reload=1:expansion=none:${font}fontsize=${Math.round(height / 13)}:fontcolor=white:box=1:boxcolor=black:boxborderw=10:line_spacing=6:x=20:y=20`;
  const bitrate = `${bitrateKbps}k`;
  return [
    ...["-hide_banner", "-loglevel", "warning", "-nostats", "-nostdin"],
    ...["-re", "-f", "lavfi", "-i", `testsrc=size=${width}x${height}:rate=${fps},${draw},format=yuv420p`],
    ...["-an", "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0", "-auto-alt-ref", "0", "-error-resilient", "1"],
    ...["-g", String(fps), "-keyint_min", String(fps), "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-undershoot-pct", "95", "-threads", "1"],
    ...["-f", "rtp", "-payload_type", "96", `rtp://127.0.0.1:${options.port}?pkt_size=1200`],
  ];
}

/** Breaks text into lines of at most LINE_CHARS characters, at spaces where possible. */
export function wrapText(text: string, width = LINE_CHARS): string {
  const lines: string[] = [];
  for (const paragraph of text.replace(/\r/g, "").split("\n")) {
    let line = "";
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      for (let rest = word; rest.length > 0; ) {
        const room = line ? width - line.length - 1 : width;
        if (rest.length <= room) {
          line = line ? `${line} ${rest}` : rest;
          rest = "";
        } else if (line) {
          lines.push(line);
          line = "";
        } else {
          lines.push(rest.slice(0, width));
          rest = rest.slice(width);
        }
      }
    }
    lines.push(line);
  }
  return lines.join("\n");
}
