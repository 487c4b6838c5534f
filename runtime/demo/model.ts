/**
 * The demo model: a live `main_video` track (VP8, 640×360, 30 fps) of a moving test pattern with the latest
 * `set_prompt` text drawn into it, so a prompt visibly changes the stream. One ffmpeg per session, started when
 * the session is assigned (before the client's offer arrives) and stopped when it ends.
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
import { json, object, record, string } from "../../src/protocol/schema.ts";
import type { Log } from "../log.ts";
import { defineModel } from "../model.ts";
import { TestPatternEncoder } from "./encoder.ts";
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
  ffmpegPath?: string;
}

export const DEMO_MODEL_NAME = "demo";
const INITIAL_PROMPT = "Send set_prompt to change this text";

export function demoModel(options: DemoModelOptions = {}) {
  const { width = 640, height = 360, fps = 30, bitrateKbps = 1000, spareEncoders = 0 } = options;
  let log: Log = () => undefined; // the agent's, from start()
  const text = options.initialPrompt ?? INITIAL_PROMPT;
  const encoders = new EncoderPool({
    warm: spareEncoders,
    start: (relay) =>
      TestPatternEncoder.start({
        width,
        height,
        fps,
        bitrateKbps,
        text,
        ffmpegPath: options.ffmpegPath,
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
      await encoders.start();
    },
    stop: () => encoders.stop(),
    async onSession(session) {
      const video = session.video("main_video");
      const feed = await encoders.take({
        write: (packet) => video.writeRtp(packet),
        fail: (error) => session.release(`video encoder failed: ${error.message}`),
        log: session.log,
      });
      const { encoder } = feed;
      return {
        async onCommand(command) {
          switch (command.type) {
            case "set_prompt":
              await encoder.setText(command.data.prompt);
              session.emit({ type: "command_result", command: command.type, ok: true, prompt: command.data.prompt });
              return;
            case "echo":
              session.emit({ type: "command_result", command: command.type, ok: true, data: command.data });
              return;
            case "set_image":
              session.emit({ type: "command_result", command: command.type, ok: true, ...(await digest(await command.uploads["image"]!.stream())) });
              return;
          }
        },
        onFileUploaded({ upload_id, name, mime_type, size }) {
          session.emit({ type: "file_uploaded", upload_id, name, mime_type, size });
        },
        close: () => encoders.give(feed),
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
