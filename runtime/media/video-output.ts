/**
 * One video track of one session, fanned out to the peer connections that carry it. The session's video runs
 * independently of its peer connections: a reconnect gets a new peer connection and the same stream goes on.
 *
 * Fast first frame: the packets since the last key frame are kept, and replayed to a new peer connection the
 * moment its sender can send (DTLS up), so the browser decodes the current picture at once instead of waiting up
 * to a GOP for the next key frame. After the replay that connection goes live.
 */
import { MediaStreamTrack, type RTCRtpSender } from "werift";
import type { VideoSink } from "../model.ts";
import { rtpFields, startsVp8KeyFrame } from "./rtp.ts";

/** At 1 Mbit/s and 1200-byte packets a 1 s GOP is ~100 packets; this bounds memory if key frames stop coming. */
const MAX_KEPT_PACKETS = 1000;

interface Attached {
  track: MediaStreamTrack;
  live: boolean;
  unsubscribe: () => void;
}

export class VideoOutput implements VideoSink {
  readonly name: string;
  #sinceKeyFrame: Buffer[] = [];
  #ssrc: number | undefined;
  readonly #attached = new Set<Attached>();
  #packets = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Packets written so far. */
  get packets(): number {
    return this.#packets;
  }

  writeRtp(packet: Buffer): void {
    const fields = rtpFields(packet);
    if (!fields) return;
    this.#packets++;
    if (fields.ssrc !== this.#ssrc) {
      // The source restarted: its sequence numbers and timestamps start elsewhere. Senders keep theirs continuous.
      const restarted = this.#ssrc !== undefined;
      this.#ssrc = fields.ssrc;
      this.#sinceKeyFrame = [];
      if (restarted) for (const sink of this.#attached) if (sink.live) sink.track.notifySourceChanged(fields);
    }
    if (startsVp8KeyFrame(packet, fields.payloadOffset)) this.#sinceKeyFrame = [];
    if (this.#sinceKeyFrame.length < MAX_KEPT_PACKETS) this.#sinceKeyFrame.push(packet);
    for (const sink of this.#attached) if (sink.live) sink.track.writeRtp(packet);
  }

  /** Gives `sender` a track carrying this output; it goes live when the sender is ready. Returns the detach. */
  attach(sender: RTCRtpSender): { track: MediaStreamTrack; detach: () => void } {
    const track = new MediaStreamTrack({ kind: "video" });
    const sink: Attached = { track, live: false, unsubscribe: () => undefined };
    sink.unsubscribe = sender.onReady.subscribe(() => {
      if (!this.#attached.has(sink) || sink.live) return;
      for (const kept of this.#sinceKeyFrame) track.writeRtp(kept);
      sink.live = true;
    }).unSubscribe;
    this.#attached.add(sink);
    return {
      track,
      detach: () => {
        sink.unsubscribe();
        this.#attached.delete(sink);
        track.stop();
      },
    };
  }
}
