/**
 * Which ffmpeg and which font the demo model uses, and what to tell a person when its encoder cannot start.
 *
 * Both come from npm, so a machine needs neither a system ffmpeg nor system fonts: `@ffmpeg-installer/ffmpeg` picks
 * the static build for this platform (`@ffmpeg-installer/linux-x64`: ffmpeg 4.1 with libvpx and drawtext), and
 * `dejavu-fonts-ttf` ships DejaVu Sans. Another ffmpeg only when asked for: `--ffmpeg <path>` (runtime/main.ts,
 * `npm start`), `REACTOR_FFMPEG`, or the model's `ffmpegPath` option; a bare name (`--ffmpeg ffmpeg`) is looked up
 * on PATH.
 *
 * Every reason an encoder cannot start is an EncoderUnavailable whose message is one line with the cause and the
 * fix, e.g. "demo encoder: cannot start ffmpeg at /x (ENOENT: no such file): reinstall with `npm ci` or pass
 * --ffmpeg <path>" — the agent logs it and the session's client is sent it (demo/model.ts).
 */
import { accessSync, constants, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

/** Where the ffmpeg to run was chosen, as messages name it. */
export type FfmpegSource = "package" | "--ffmpeg" | "REACTOR_FFMPEG" | "ffmpegPath";

export interface FfmpegChoice {
  /** What to run: an absolute path, or a bare name looked up on PATH; undefined when there is no packaged one. */
  command: string | undefined;
  source: FfmpegSource;
  /** Why there is no packaged ffmpeg (unsupported platform, package not installed). */
  problem?: string;
}

/** The model-message code (and the error's) when a session gets no video because its encoder cannot start. */
export const ENCODER_UNAVAILABLE = "ENCODER_UNAVAILABLE";

export class EncoderUnavailable extends Error {
  readonly code = ENCODER_UNAVAILABLE;
}

/** The ffmpeg to run: the one asked for (`requested`, from `source`), else the packaged one. */
export function chooseFfmpeg(requested?: string, source: Exclude<FfmpegSource, "package"> = "ffmpegPath"): FfmpegChoice {
  if (requested) return { command: requested.includes("/") || requested.includes("\\") ? path.resolve(requested) : requested, source };
  try {
    return { command: (require("@ffmpeg-installer/ffmpeg") as { path: string }).path, source: "package" };
  } catch (error) {
    // The package throws strings ("Unsupported platform/architecture: …", "Could not find ffmpeg executable …").
    const problem = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error);
    return { command: undefined, source: "package", problem: `${problem}`.split("\n")[0]! };
  }
}

/** How to fix an ffmpeg that cannot start, by where it came from. */
export function fixFor(source: FfmpegSource): string {
  switch (source) {
    case "package":
      return "reinstall with `npm ci` or pass --ffmpeg <path>";
    case "--ffmpeg":
      return "fix --ffmpeg <path>, or leave it out to use the packaged ffmpeg";
    case "REACTOR_FFMPEG":
      return "fix REACTOR_FFMPEG, or unset it to use the packaged ffmpeg";
    case "ffmpegPath":
      return "fix the ffmpegPath option, or leave it out to use the packaged ffmpeg";
  }
}

/** An EncoderUnavailable saying `cause` and the fix for `choice`. */
export function encoderUnavailable(choice: FfmpegChoice, cause: string): EncoderUnavailable {
  return new EncoderUnavailable(`demo encoder: ${cause}: ${fixFor(choice.source)}`);
}

/** `ffmpeg at /path`, or `ffmpeg "name" from PATH`, for messages. */
export function describeFfmpeg(choice: FfmpegChoice): string {
  const { command } = choice;
  if (command === undefined) return "no ffmpeg";
  return path.isAbsolute(command) ? `ffmpeg at ${command}` : `ffmpeg "${command}" from PATH`;
}

/**
 * Throws an EncoderUnavailable if `choice` cannot be run at all: no packaged one, no such file (or not on PATH),
 * not a file, not executable. What is left (a wrong build, a crash) shows when it runs (encoder.ts).
 */
export function checkFfmpeg(choice: FfmpegChoice): string {
  const { command } = choice;
  if (command === undefined) {
    throw encoderUnavailable(choice, `no packaged ffmpeg for ${process.platform}-${process.arch} (${choice.problem})`);
  }
  if (!path.isAbsolute(command)) {
    if (process.platform === "win32" || onPath(command)) return command;
    throw encoderUnavailable(choice, `cannot start ffmpeg "${command}" (ENOENT: not found on PATH)`);
  }
  try {
    if (!statSync(command).isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
    if (process.platform !== "win32") accessSync(command, constants.X_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw encoderUnavailable(choice, `cannot start ffmpeg at ${command} (${code}: ${ERRNO_TEXT[code] ?? (error as Error).message})`);
  }
  return command;
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "not executable",
  EISDIR: "not a file",
  ENOTDIR: "a parent is not a directory",
};

function onPath(name: string): boolean {
  return (process.env.PATH ?? "").split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir || ".", name), constants.X_OK);
      return statSync(path.join(dir || ".", name)).isFile();
    } catch {
      return false;
    }
  });
}

/** DejaVu Sans Bold from the `dejavu-fonts-ttf` package: drawtext gets it as its `fontfile`, never a system font. */
export function packagedFont(): string {
  return path.join(path.dirname(require.resolve("dejavu-fonts-ttf/package.json")), "ttf", "DejaVuSans-Bold.ttf");
}
