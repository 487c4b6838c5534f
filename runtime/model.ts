/**
 * What a model implements to run behind the agent. The agent does everything else: the gateway sockets, WebRTC,
 * validating commands against the model's declared schemas, delivering its messages exactly once.
 *
 *   const model = defineModel({
 *     name: "my-model",
 *     tracks: [{ name: "main_video", kind: "video", direction: "recvonly" }],
 *     commands: { set_prompt: { description: "…", schema: object({ prompt: string({ min: 1, max: 200 }) }) } },
 *     onSession(session) {
 *       const video = session.video("main_video");     // write encoded frames as RTP packets
 *       return {
 *         onCommand(command) { session.emit({ type: "command_result", command: command.type, ok: true }); },
 *         close() { … },
 *       };
 *     },
 *   });
 */
import type { Capabilities, TrackCapability as TrackCapabilitySchema } from "../protocol/common.ts";
import type { Infer, Schema } from "../protocol/schema.ts";
import type { Log } from "./log.ts";

export type MessageScope = "application" | "runtime";

/** A media track as the client sees it. */
export type TrackCapability = Infer<typeof TrackCapabilitySchema>;

export interface CommandSpec<T = unknown> {
  description: string;
  /** Validates the command's data (absent data is checked as `{}`); its JSON Schema is published as a capability. */
  schema: Schema<T>;
  /**
   * Parameters that take an uploaded file, each required: the client sends a FileRef for it (in the command's
   * `uploads` section), the agent checks it with the gateway and hands the model an `UploadedFile`.
   */
  uploads?: readonly string[];
}

// `any` lets each entry keep its own data type; `CommandOf` recovers them.
// biome-ignore lint/suspicious/noExplicitAny: a bound over each command's own data type (see above); `unknown` would erase them.
export type CommandSpecs = Record<string, CommandSpec<any>>;

/**
 * A command that passed its schema: `type` names it, `data` is what the schema returned, `uploads` holds the files of
 * its declared upload parameters (empty for commands that take none).
 */
export type CommandOf<C extends CommandSpecs> = {
  [K in keyof C & string]: { type: K; data: Infer<C[K]["schema"]>; uploads: Readonly<Record<string, UploadedFile>> };
}[keyof C & string];

/** A track's output: the model writes its encoded video here. */
export interface VideoSink {
  /**
   * One RTP packet of encoded video (VP8, 90 kHz clock), in order. Its SSRC and payload type are rewritten for
   * each peer connection; a new SSRC means the source restarted, and the stream continues seamlessly.
   */
  writeRtp(packet: Buffer): void;
}

/**
 * A file the client uploaded to this session (docs/uploads.md), checked with the gateway before the model sees it:
 * it exists, is complete, belongs to this session, and these facts are the gateway's record.
 */
export interface UploadedFile {
  upload_id: string;
  name: string;
  mime_type: string;
  size: number;
  /** The bytes, streamed from the gateway (the first call reuses the checking request; later ones fetch again). */
  stream(): Promise<ReadableStream<Uint8Array>>;
  /** All the bytes in memory (up to the gateway's UPLOAD_MAX_BYTES). */
  bytes(): Promise<Uint8Array>;
}

/** What the agent gives the model for one session. */
export interface ModelSession {
  readonly id: string;
  /** `extra_args` from the client's session request, if any. */
  readonly extraArgs: unknown;
  readonly log: Log;
  /** The output of a declared video track (`direction: "recvonly"`: the client receives it). */
  video(track: string): VideoSink;
  /**
   * A message for the client (application scope by default), delivered exactly once and in order: over the
   * `data` channel when the client has one open, else through the gateway.
   */
  emit(data: unknown, scope?: MessageScope): void;
  /** The model cannot go on with this session: the gateway ends it (the client sees it end). */
  release(reason: string): void;
}

/** The model's side of one session. Calls are serialized: the next one waits until the previous one settled. */
export interface SessionHandler<C extends CommandSpecs = CommandSpecs> {
  /** A command that passed its declared schema. Throwing answers the client with a `command_error` message. */
  onCommand(command: CommandOf<C>): void | Promise<void>;
  onFileUploaded?(file: UploadedFile): void | Promise<void>;
  /**
   * The client opened a data channel (each new peer connection): what it must know at once (a standing error, say)
   * can be sent now. The official client reads model messages only there, so one emitted before was never seen by it.
   */
  onClientConnected?(): void | Promise<void>;
  /** The session is over (ended by the client, the gateway, or the agent stopping): free what it holds. */
  close(reason: string): void | Promise<void>;
}

export interface Model<C extends CommandSpecs = CommandSpecs> {
  name: string;
  version?: string;
  /** Tracks as the client sees them: `recvonly` = the client receives (the model sends). */
  tracks: TrackCapability[];
  commands: C;
  emissionFps?: number;
  /** Once, before the agent registers: load weights, warm up. */
  start?(context: { log: Log }): Promise<void>;
  /** Once, after every session was closed. */
  stop?(): Promise<void>;
  /** A session was assigned to this runtime. Throwing releases it. */
  onSession(session: ModelSession): SessionHandler<C> | Promise<SessionHandler<C>>;
}

/**
 * A model of any command set, as the agent holds it. (`Model<CommandSpecs>` would not do: a handler typed for
 * its own commands does not accept every command, and the agent only ever hands it commands that passed them.)
 */
// biome-ignore lint/suspicious/noExplicitAny: any command set, as explained above; no bound narrower than `any` is accepted by every model.
export type AnyModel = Model<any>;

/** Identity, for type inference: `onCommand` then sees each command's own data type. */
export function defineModel<C extends CommandSpecs>(model: Model<C>): Model<C> {
  return model;
}

export const PROTOCOL_VERSION = "1.0";

/** The capabilities the agent registers with (and the client reads from its session). */
export function capabilitiesOf(model: AnyModel): Capabilities {
  return {
    protocol_version: PROTOCOL_VERSION,
    tracks: model.tracks,
    commands: Object.entries(model.commands as CommandSpecs).map(([name, spec]) => ({
      name,
      description: spec.description,
      schema: spec.schema.json,
      ...(spec.uploads && { uploads: [...spec.uploads] }),
    })),
    ...(model.emissionFps !== undefined && { emission_fps: model.emissionFps }),
  };
}
