/**
 * One peer connection with the client (one offer generation), answered with werift as docs/media-recipe.md
 * measured it: loopback host candidate, VP8 only, the answer sent once ICE gathering is complete (the official
 * client does not trickle, so the answer must carry the candidates). Candidates gathered after the answer are
 * trickled, then end-of-candidates, for clients that do trickle (the native SDK).
 *
 * The model's declared tracks are matched to the offer's transceivers by the client's `track_mapping` (mid →
 * name) when it sends one, else by kind in declaration order.
 */
import { RTCPeerConnection, RTCRtpCodecParameters, type RTCDataChannel, type RTCRtpTransceiver } from "werift";
import type { IceCandidate, PeerState } from "../src/protocol/common.ts";
import { array, parse } from "../src/protocol/schema.ts";
import { TrackMappingEntry } from "../src/protocol/sessions.ts";
import { errorText, type Log } from "./log.ts";
import type { VideoOutput } from "./media/video-output.ts";
import type { TrackCapability } from "./model.ts";

export interface WebRtcOptions {
  /** ICE servers for the runtime's side (default none: host candidates only). */
  iceServers?: { urls: string | string[]; username?: string; credential?: string }[];
  /** Extra host addresses to offer; default ["127.0.0.1"] so a client on the same machine connects. */
  additionalHostAddresses?: string[];
  /** How long the answer waits for ICE gathering (default 3 s); later candidates are trickled. */
  gatherTimeoutMs?: number;
}

export interface PeerLinkOptions {
  generation: number;
  offer: string;
  trackMapping: unknown;
  tracks: readonly TrackCapability[];
  output(name: string): VideoOutput | undefined;
  webrtc: WebRtcOptions;
  log: Log;
  onCandidate(candidate: IceCandidate | null): void;
  onState(state: PeerState): void;
  onDataChannelMessage(text: string | Buffer): void;
  onDataChannelOpen(): void;
  /** The client closed the channel (its peer connection closing closes it at once; ICE notices ~30 s later). */
  onDataChannelClosed(): void;
}

/** The data channel the official client opens; commands come in and model messages go out on it. */
export const DATA_CHANNEL_LABEL = "data";

const TrackMapping = array(TrackMappingEntry, { max: 16 });

export function vp8Codec(): RTCRtpCodecParameters {
  return new RTCRtpCodecParameters({
    mimeType: "video/VP8",
    clockRate: 90000,
    rtcpFeedback: [{ type: "nack" }, { type: "nack", parameter: "pli" }, { type: "goog-remb" }],
  });
}

export function newPeerConnection(webrtc: WebRtcOptions, bundlePolicy?: "max-bundle"): RTCPeerConnection {
  return new RTCPeerConnection({
    iceServers: webrtc.iceServers ?? [],
    iceUseIpv6: false,
    iceAdditionalHostAddresses: webrtc.additionalHostAddresses ?? ["127.0.0.1"],
    codecs: { video: [vp8Codec()] },
    ...(bundlePolicy && { bundlePolicy }),
  });
}

export class PeerLink {
  readonly generation: number;
  readonly #options: PeerLinkOptions;
  readonly #pc: RTCPeerConnection;
  readonly #cleanups: (() => void)[] = [];
  #channel: RTCDataChannel | undefined;
  /** Settles once the offer is applied: remote candidates wait for it. */
  #remoteApplied: Promise<void> | undefined;
  #answered = false;
  #endOfCandidatesSent = false;
  #closed = false;

  constructor(options: PeerLinkOptions) {
    this.generation = options.generation;
    this.#options = options;
    this.#pc = newPeerConnection(options.webrtc);
    this.#subscribe(this.#pc.connectionStateChange, (state) => options.onState(state));
    this.#subscribe(this.#pc.iceConnectionStateChange, (state) => options.log("debug", `peer connection ${options.generation}: ICE ${state}`));
    this.#subscribe(this.#pc.onIceCandidate, (candidate) => {
      if (this.#answered && candidate) options.onCandidate(toWire(candidate.toJSON()));
    });
    this.#subscribe(this.#pc.iceGatheringStateChange, (state) => {
      if (state === "complete" && this.#answered) this.#endOfCandidates();
    });
    this.#subscribe(this.#pc.onDataChannel, (channel) => this.#adoptChannel(channel));
  }

  get connectionState(): PeerState {
    return this.#pc.connectionState;
  }

  get dataChannelOpen(): boolean {
    return this.#channel?.readyState === "open";
  }

  /** Applies the offer, attaches the model's tracks, and returns the answer once gathering is done (or timed out). */
  async answer(): Promise<string> {
    const started = performance.now();
    this.#remoteApplied = this.#pc.setRemoteDescription({ type: "offer", sdp: this.#options.offer });
    await this.#remoteApplied;
    await this.#attachTracks();
    const applied = performance.now();
    await this.#pc.setLocalDescription(await this.#pc.createAnswer());
    const described = performance.now();
    await this.#gathered(this.#options.webrtc.gatherTimeoutMs ?? 3000);
    const sdp = this.#pc.localDescription?.sdp;
    if (!sdp) throw new Error("werift produced no local description");
    const ms = (from: number, to: number) => Math.round(to - from);
    this.#options.log("debug", `answer ${this.generation} in ${ms(started, performance.now())} ms (offer applied ${ms(started, applied)}, local description ${ms(applied, described)}, gathering ${ms(described, performance.now())})`);
    this.#answered = true;
    if (this.#pc.iceGatheringState === "complete") queueMicrotask(() => this.#endOfCandidates());
    return sdp;
  }

  async addRemoteCandidate(candidate: IceCandidate | null): Promise<void> {
    if (candidate === null || candidate.candidate === "" || this.#closed) return; // end of candidates: nothing to do
    try {
      await this.#remoteApplied;
      await this.#pc.addIceCandidate({
        candidate: candidate.candidate,
        sdpMid: candidate.sdp_mid ?? undefined,
        sdpMLineIndex: candidate.sdp_mline_index ?? undefined,
      });
    } catch (error) {
      // Chromium's mDNS (.local) candidates cannot be resolved here; the connection comes up through
      // peer-reflexive candidates instead.
      this.#options.log("debug", `candidate not added (${errorText(error)}): ${candidate.candidate}`);
    }
  }

  /** Sends on the data channel if it is open; returns whether it was sent. */
  send(text: string): boolean {
    if (!this.dataChannelOpen) return false;
    try {
      this.#channel!.send(text);
      return true;
    } catch (error) {
      this.#options.log("warn", `data channel send failed: ${errorText(error)}`);
      return false;
    }
  }

  /** Closes the peer connection; no more events reach the session from it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cleanup of this.#cleanups.splice(0)) cleanup();
    void this.#pc.close().catch((error: unknown) => this.#options.log("debug", `close: ${errorText(error)}`));
  }

  async #attachTracks(): Promise<void> {
    const transceivers = this.#pc.getTransceivers();
    const names = this.#trackNames(transceivers);
    for (const transceiver of transceivers) {
      const name = names.get(transceiver);
      const capability = this.#options.tracks.find((track) => track.name === name);
      const output = name === undefined ? undefined : this.#options.output(name);
      if (!capability || capability.direction !== "recvonly" || !output) {
        // Tracks the client would send (webcam input) are not consumed yet; unknown ones are declined.
        transceiver.setDirection(capability?.direction === "sendonly" ? "recvonly" : "inactive");
        continue;
      }
      transceiver.setDirection("sendonly");
      const { track, detach } = output.attach(transceiver.sender);
      this.#cleanups.push(detach);
      this.#subscribe(transceiver.sender.onReady, () => this.#options.log("debug", `peer connection ${this.generation}: DTLS up, ${name} sender ready`));
      await transceiver.sender.replaceTrack(track);
    }
  }

  /** Transceiver → declared track name: from the client's track_mapping by mid, else by kind in declared order. */
  #trackNames(transceivers: RTCRtpTransceiver[]): Map<RTCRtpTransceiver, string> {
    const names = new Map<RTCRtpTransceiver, string>();
    const mapping = this.#options.trackMapping === undefined ? undefined : parse(TrackMapping, this.#options.trackMapping);
    if (mapping?.ok) {
      for (const transceiver of transceivers) {
        const entry = mapping.value.find((candidate) => candidate.mid === transceiver.mid);
        if (entry) names.set(transceiver, entry.name);
      }
      return names;
    }
    if (mapping && !mapping.ok) this.#options.log("warn", `track_mapping ignored (${mapping.error.message}); matching tracks by kind`);
    const unassigned = [...this.#options.tracks];
    for (const transceiver of transceivers) {
      const index = unassigned.findIndex((track) => track.kind === transceiver.kind);
      if (index >= 0) names.set(transceiver, unassigned.splice(index, 1)[0]!.name);
    }
    return names;
  }

  #adoptChannel(channel: RTCDataChannel): void {
    if (channel.label !== DATA_CHANNEL_LABEL) {
      this.#options.log("debug", `data channel "${channel.label}" ignored`);
      return;
    }
    this.#channel = channel;
    this.#subscribe(channel.onMessage, (data) => this.#options.onDataChannelMessage(data));
    this.#subscribe(channel.stateChanged, (state) => {
      if (state === "open") this.#options.onDataChannelOpen();
      else if (state === "closed") this.#options.onDataChannelClosed();
    });
    if (channel.readyState === "open") queueMicrotask(() => this.#options.onDataChannelOpen());
  }

  #endOfCandidates(): void {
    if (this.#endOfCandidatesSent || this.#closed) return;
    this.#endOfCandidatesSent = true;
    this.#options.onCandidate(null);
  }

  #gathered(timeoutMs: number): Promise<void> {
    if (this.#pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const { unSubscribe } = this.#pc.iceGatheringStateChange.subscribe((state) => {
        if (state === "complete") done();
      });
      function done() {
        clearTimeout(timer);
        unSubscribe();
        resolve();
      }
    });
  }

  #subscribe<T extends unknown[]>(event: { subscribe(fn: (...args: T) => void): { unSubscribe: () => void } }, fn: (...args: T) => void): void {
    this.#cleanups.push(event.subscribe((...args: T) => {
      if (!this.#closed) fn(...args);
    }).unSubscribe);
  }
}

function toWire(candidate: { candidate: string; sdpMid?: string; sdpMLineIndex?: number }): IceCandidate {
  return {
    candidate: candidate.candidate,
    ...(candidate.sdpMid !== undefined && { sdp_mid: candidate.sdpMid }),
    ...(candidate.sdpMLineIndex !== undefined && { sdp_mline_index: candidate.sdpMLineIndex }),
  };
}
