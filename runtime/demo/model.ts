/**
 * The demo model: a live `main_video` track (VP8, 640×360, 30 fps) of a moving test pattern with the latest
 * `set_prompt` text drawn into it, so a prompt visibly changes the stream. One ffmpeg per session, started when
 * the session is assigned (before the client's offer arrives) and stopped when it ends.
 *
 * `spareEncoders: n` keeps n encoders running ahead of sessions: a new session takes one that is already producing
 * video (with its latest key frame kept), so its first frame does not wait for ffmpeg to start (~150–300 ms
 * here), at the price of each spare's CPU while the runtime is idle (docs/media-recipe.md has the figures).
 *
 * Commands: `set_prompt { prompt: 1..200 chars }` and `echo { …anything }`. Every command is answered with an
 * application message `{ type: "command_result", command, ok: true, … }` (`prompt` for set_prompt, `data` for echo).
 */
import { json, object, record, string } from "../../src/protocol/schema.ts";
import type { Log } from "../log.ts";
import { rtpFields, startsVp8KeyFrame } from "../media/rtp.ts";
import { defineModel } from "../model.ts";
import { TestPatternEncoder } from "./encoder.ts";

export interface DemoModelOptions {
  width?: number;
  height?: number;
  fps?: number;
  bitrateKbps?: number;
  /** Text drawn until the first set_prompt. */
  initialPrompt?: string;
  /** Encoders kept running ahead of sessions (default 0). */
  spareEncoders?: number;
  ffmpegPath?: string;
}

export const DEMO_MODEL_NAME = "demo";
const INITIAL_PROMPT = "Send set_prompt to change this text";

export function demoModel(options: DemoModelOptions = {}) {
  const { width = 640, height = 360, fps = 30, bitrateKbps = 1000, spareEncoders = 0 } = options;
  let log: Log = () => undefined; // the agent's, from start()
  const spares: Promise<Feed | undefined>[] = [];

  const startFeed = async (): Promise<Feed> => {
    const relay = new PacketRelay();
    const encoder = await TestPatternEncoder.start({
      width,
      height,
      fps,
      bitrateKbps,
      text: options.initialPrompt ?? INITIAL_PROMPT,
      ffmpegPath: options.ffmpegPath,
      log: (level, message) => relay.log(level, message),
      onPacket: (packet) => relay.write(packet),
      onFailure: (error) => relay.fail(error),
    });
    return { encoder, relay };
  };
  const addSpare = () => {
    const spare = startFeed().catch((error: unknown) => {
      log("warn", `could not start a spare encoder: ${String(error)}`);
      return undefined;
    });
    spares.push(spare);
  };

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
    },
    emissionFps: fps,
    async start(context) {
      log = context.log;
      for (let i = 0; i < spareEncoders; i++) addSpare();
      await Promise.all(spares);
    },
    async stop() {
      const feeds = await Promise.all(spares.splice(0));
      await Promise.all(feeds.map((feed) => feed?.encoder.stop()));
    },
    async onSession(session) {
      let feed: Feed | undefined;
      for (let tries = spares.length; !feed && tries > 0; tries--) {
        const spare = await spares.shift();
        addSpare(); // replace the one taken
        if (spare && !spare.relay.failed) feed = spare;
        else await spare?.encoder.stop();
      }
      const { encoder, relay } = feed ?? (await startFeed());
      const video = session.video("main_video");
      relay.attach({
        write: (packet) => video.writeRtp(packet),
        fail: (error) => session.release(`video encoder failed: ${error.message}`),
        log: session.log,
      });
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
          }
        },
        close: () => encoder.stop(),
      };
    },
  });
}

interface Feed {
  encoder: TestPatternEncoder;
  relay: PacketRelay;
}

interface FeedTarget {
  write(packet: Buffer): void;
  fail(error: Error): void;
  log: Log;
}

/**
 * Where an encoder's packets go. Until a session takes the encoder, the packets since its last key frame are
 * kept, and handed over first: the session's video starts with a decodable picture, not mid-GOP.
 */
class PacketRelay {
  #target: FeedTarget | undefined;
  #sinceKeyFrame: Buffer[] = [];
  #failure: Error | undefined;

  write(packet: Buffer): void {
    if (this.#target) return this.#target.write(packet);
    const fields = rtpFields(packet);
    if (fields && startsVp8KeyFrame(packet, fields.payloadOffset)) this.#sinceKeyFrame = [];
    if (this.#sinceKeyFrame.length < 1000) this.#sinceKeyFrame.push(packet);
  }

  attach(target: FeedTarget): void {
    this.#target = target;
    for (const packet of this.#sinceKeyFrame.splice(0)) target.write(packet);
    if (this.#failure) target.fail(this.#failure);
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  fail(error: Error): void {
    this.#failure = error;
    this.#target?.fail(error);
  }

  log(level: Parameters<Log>[0], message: string): void {
    this.#target?.log(level, message);
  }
}
