/**
 * The demo model's encoders, kept warm: `warm` encoders start with the model and keep producing video while no
 * session uses them. A session takes an idle one (its video then starts with a decodable picture at once: the
 * packets since the encoder's last key frame are handed over first) and gives it back when it ends, so the next
 * session takes it warm too. With as many warm encoders as the runtime has slots, no ffmpeg ever starts on a
 * session's path: starting one takes 240–370 ms here (more on a busy machine) and a burst of CPU right while the
 * client connects (docs/media-recipe.md). A session that finds none idle starts its own, as with `warm: 0`; when
 * it ends, its encoder is kept if fewer than `warm` are idle, else stopped.
 */
import { errorText, type Log } from "../log.ts";
import { rtpFields, startsVp8KeyFrame } from "../media/rtp.ts";
import type { TestPatternEncoder } from "./encoder.ts";

/** At 1 Mbit/s and 1200-byte packets a 1 s GOP is ~100 packets; this bounds memory if key frames stop coming. */
const MAX_KEPT_PACKETS = 1000;

export interface Feed {
  encoder: TestPatternEncoder;
  relay: PacketRelay;
}

export interface FeedTarget {
  write(packet: Buffer): void;
  fail(error: Error): void;
  log: Log;
}

export interface EncoderPoolOptions {
  /** Encoders kept running while idle. */
  warm: number;
  /** Starts an encoder whose packets go to `relay`. */
  start(relay: PacketRelay): Promise<TestPatternEncoder>;
  /** Makes a given-back encoder draw what a fresh one would (its text). */
  reset(encoder: TestPatternEncoder): Promise<void>;
  log(): Log;
}

export class EncoderPool {
  readonly #options: EncoderPoolOptions;
  /** Idle encoders, oldest first; a promise while one is still starting. */
  readonly #idle: Promise<Feed | undefined>[] = [];
  readonly #busy = new Set<Feed>();
  #stopped = false;

  constructor(options: EncoderPoolOptions) {
    this.#options = options;
  }

  /**
   * Starts the warm encoders; resolves once each has produced a key frame (a session taking it shows a picture at
   * once) or failed. A failure is logged (one line: cause and fix) and does not stop the agent: each session then
   * tries again, and its client is told if that fails too.
   */
  async start(): Promise<void> {
    for (let i = 0; i < this.#options.warm; i++) {
      this.#idle.push(
        this.#startFeed().catch((error: unknown) => {
          this.#options.log()("error", errorText(error));
          return undefined;
        }),
      );
    }
    const feeds = await Promise.all(this.#idle);
    await Promise.all(feeds.map((feed) => feed?.relay.settled));
  }

  /** An encoder for a session: an idle one already producing video if there is one, else a new one. */
  async take(target: FeedTarget): Promise<Feed> {
    let feed: Feed | undefined;
    while (!feed && this.#idle.length > 0) {
      const idle = await this.#idle.shift();
      if (idle && !idle.relay.failed) feed = idle;
      else await idle?.encoder.stop();
    }
    feed ??= await this.#startFeed();
    this.#busy.add(feed);
    feed.relay.attach(target);
    return feed;
  }

  /** The session is over: the encoder goes back to the idle ones (drawing the initial text again), or stops. */
  async give(feed: Feed): Promise<void> {
    if (!this.#busy.delete(feed)) return;
    feed.relay.detach();
    if (this.#stopped || feed.relay.failed || this.#idle.length >= this.#options.warm) return feed.encoder.stop();
    // Idle at once (a session assigned meanwhile waits for the reset rather than starting an encoder).
    const reset = this.#options.reset(feed.encoder).then(
      () => feed,
      async (error: unknown) => {
        this.#warn("could not reset an encoder; stopping it", error);
        await feed.encoder.stop();
        return undefined;
      },
    );
    this.#idle.push(reset);
    await reset;
  }

  /** Stops every encoder, idle or not. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const idle = await Promise.all(this.#idle.splice(0));
    const busy = [...this.#busy];
    this.#busy.clear();
    await Promise.all([...idle, ...busy].map((feed) => feed?.encoder.stop()));
  }

  async #startFeed(): Promise<Feed> {
    const relay = new PacketRelay(this.#options.log);
    const encoder = await this.#options.start(relay);
    return { encoder, relay };
  }

  #warn(message: string, error: unknown): undefined {
    this.#options.log()("warn", `${message}: ${errorText(error)}`);
    return undefined;
  }
}

/**
 * Where an encoder's packets go. The packets since its last key frame are always kept: when a session takes the
 * encoder they are handed over first, so its video starts with a decodable picture, not mid-GOP.
 */
export class PacketRelay {
  #target: FeedTarget | undefined;
  /** Since the last key frame; empty until one is seen, so a replay never starts mid-GOP. */
  #sinceKeyFrame: Buffer[] = [];
  #keyFrameSeen = false;
  #failure: Error | undefined;
  #settle: ((failure: Error | undefined) => void) | undefined;
  /** Where an idle encoder's failure is logged (with a session attached, the session reports it). */
  readonly #idleLog: () => Log;
  /** Settles at the encoder's first key frame (undefined) or its failure (the error), whichever comes first. */
  readonly settled = new Promise<Error | undefined>((resolve) => (this.#settle = resolve));

  constructor(idleLog: () => Log = () => () => undefined) {
    this.#idleLog = idleLog;
  }

  write(packet: Buffer): void {
    const fields = rtpFields(packet);
    if (fields && startsVp8KeyFrame(packet, fields.payloadOffset)) {
      this.#sinceKeyFrame = [];
      this.#keyFrameSeen = true;
      this.#settle?.(undefined);
    }
    if (this.#keyFrameSeen && this.#sinceKeyFrame.length < MAX_KEPT_PACKETS) this.#sinceKeyFrame.push(packet);
    this.#target?.write(packet);
  }

  attach(target: FeedTarget): void {
    this.#target = target;
    for (const packet of this.#sinceKeyFrame) target.write(packet);
    if (this.#failure) target.fail(this.#failure);
  }

  detach(): void {
    this.#target = undefined;
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  fail(error: Error): void {
    this.#failure = error;
    this.#settle?.(error);
    if (this.#target) this.#target.fail(error);
    else this.#idleLog()("error", error.message);
  }

  log(level: Parameters<Log>[0], message: string): void {
    this.#target?.log(level, message);
  }
}
