/**
 * The demo model: a live `main_video` track (VP8, 640×360, 30 fps) of a moving test pattern with the latest
 * `set_prompt` text drawn into it, so a prompt visibly changes the stream. One ffmpeg per session, started when
 * the session is assigned (before the client's offer arrives) and stopped when it ends. ffmpeg and its font come
 * from npm unless another ffmpeg is asked for (ffmpeg.ts); the prompt is fitted to the frame (prompt-text.ts).
 *
 * When a session's encoder cannot start (or gives up), the session stays up without video and its client is told,
 * with an application message `{ type: "error", code: "ENCODER_UNAVAILABLE", message }` — the message is the one
 * line the agent logs, cause and fix — sent at once and again whenever the client opens a data channel (the
 * official client reads messages only there); `set_prompt` then fails with the same message. Never a silent
 * black video.
 *
 * `spareEncoders: n` keeps n encoders running while idle (encoder-pool.ts): a new session takes one that is already
 * producing video (with its latest key frame kept), so its first frame does not wait for ffmpeg to start (~150–400
 * ms here, and a burst of CPU while the client connects), and gives it back when it ends. As many as slots: no
 * encoder ever starts on a session's path, at the price of each idle encoder's CPU (docs/media-recipe.md).
 *
 * Commands: `set_prompt { prompt: 1..200 chars }`, `echo { …anything }` and `set_image` (an uploaded file in
 * `uploads.image`). Every command is answered with an application message `{ type: "command_result", command,
 * ok: true, … }` (`prompt` for set_prompt, `data` for echo, `bytes` and `sha256` of the file read for set_image).
 * The official client's `fileUploaded` notice is answered `{ type: "file_uploaded", upload_id, name, mime_type, size }`.
 */
import { createHash } from "node:crypto";
import { json, object, record, string } from "../../protocol/schema.ts";
import { errorText, type Log } from "../log.ts";
import { defineModel } from "../model.ts";
import { TestPatternEncoder } from "./encoder.ts";
import { chooseFfmpeg, describeFfmpeg, ENCODER_UNAVAILABLE, EncoderUnavailable, type FfmpegChoice } from "./ffmpeg.ts";
import { EncoderPool } from "./encoder-pool.ts";

export interface DemoModelOptions {
  width?: number;
  height?: number;
  fps?: number;
  bitrateKbps?: number;
  /** Text drawn until the first set_prompt. */
  initialPrompt?: string;
  /** Encoders kept running while idle, taken by new sessions and given back when they end (default 0). */
  spareEncoders?: number;
  /** Another ffmpeg than the packaged one: a path, or a name looked up on PATH. */
  ffmpegPath?: string;
  /** Which ffmpeg, with where it was asked for (runtime/main.ts: `--ffmpeg`, REACTOR_FFMPEG); wins over ffmpegPath. */
  ffmpeg?: FfmpegChoice;
}

export const DEMO_MODEL_NAME = "demo";

/** The application message a session's client gets when its video cannot be produced. */
export interface EncoderError {
  type: "error";
  code: typeof ENCODER_UNAVAILABLE;
  /** One line: the cause and the fix, as the agent logs it. */
  message: string;
}

const INITIAL_PROMPT = "Send set_prompt to change this text";

export function demoModel(options: DemoModelOptions = {}) {
  const { width = 640, height = 360, fps = 30, bitrateKbps = 1000, spareEncoders = 0 } = options;
  let log: Log = () => undefined; // the agent's, from start()
  const text = options.initialPrompt ?? INITIAL_PROMPT;
  const ffmpeg = options.ffmpeg ?? chooseFfmpeg(options.ffmpegPath);
  const encoders = new EncoderPool({
    warm: spareEncoders,
    start: (relay) =>
      TestPatternEncoder.start({
        width,
        height,
        fps,
        bitrateKbps,
        text,
        ffmpeg,
        log: (level, message) => relay.log(level, message),
        onPacket: (packet) => relay.write(packet),
        onFailure: (error) => relay.fail(error),
      }),
    reset: (encoder) => encoder.setText(text),
    log: () => log,
  });

  return defineModel({
    name: DEMO_MODEL_NAME,
    version: "1.0.0",
    tracks: [{ name: "main_video", kind: "video", direction: "recvonly" }],
    commands: {
      set_prompt: {
        description: "Draws the prompt into the video.",
        schema: object({ prompt: string({ min: 1, max: 200, description: "The text to draw." }) }),
      },
      echo: { description: "Answers with the same data.", schema: record(json()) },
      set_image: {
        description: "Reads an uploaded image and answers its byte count and SHA-256.",
        schema: object({}),
        uploads: ["image"],
      },
    },
    emissionFps: fps,
    async start(context) {
      log = context.log;
      log("info", `video by ${describeFfmpeg(ffmpeg)} (${ffmpeg.source === "package" ? "installed from npm" : `chosen with ${ffmpeg.source}`})`);
      await encoders.start();
    },
    stop: () => encoders.stop(),
    async onSession(session) {
      const video = session.video("main_video");
      /** Why this session has no video, once its encoder failed: told to the client, logged once. */
      let unavailable: EncoderError | undefined;
      const report = (error: unknown) => {
        if (unavailable) return;
        const message = errorText(error);
        unavailable = { type: "error", code: ENCODER_UNAVAILABLE, message };
        session.log("error", message);
        session.emit(unavailable);
      };
      const feed = await encoders.take({ write: (packet) => video.writeRtp(packet), fail: report, log: session.log }).catch((error: unknown) => {
        if (!(error instanceof EncoderUnavailable)) throw error; // the model failed: the session is released
        report(error);
        return undefined;
      });
      return {
        async onCommand(command) {
          switch (command.type) {
            case "set_prompt":
              if (!feed || unavailable) throw new Error(unavailable?.message ?? "no encoder");
              await feed.encoder.setText(command.data.prompt);
              session.emit({ type: "command_result", command: command.type, ok: true, prompt: command.data.prompt });
              return;
            case "echo":
              session.emit({ type: "command_result", command: command.type, ok: true, data: command.data });
              return;
            case "set_image":
              session.emit({ type: "command_result", command: command.type, ok: true, ...(await digest(await command.uploads.image!.stream())) });
              return;
          }
        },
        onFileUploaded({ upload_id, name, mime_type, size }) {
          session.emit({ type: "file_uploaded", upload_id, name, mime_type, size });
        },
        onClientConnected() {
          if (unavailable) session.emit(unavailable);
        },
        close: () => (feed ? encoders.give(feed) : undefined),
      };
    },
  });
}

/** Byte count and SHA-256 (hex) of a stream, read chunk by chunk. */
async function digest(stream: ReadableStream<Uint8Array>): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const reader = stream.getReader();
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    hash.update(next.value);
    bytes += next.value.byteLength;
  }
  return { bytes, sha256: hash.digest("hex") };
}
