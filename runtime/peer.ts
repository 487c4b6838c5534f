/**
 * One peer connection with the client (one offer generation), answered with werift as docs/media-recipe.md
 * measured it: loopback host candidate, VP8 only. A client that takes trickled candidates (the native SDK, `trickle`)
 * gets the answer at once and every candidate after it as it is gathered; any other (the official client does not
 * trickle) gets the answer once ICE gathering is complete, carrying the candidates, and only those gathered later
 * are trickled. End-of-candidates follows either way. Candidates go out only after the caller has sent the answer
 * (`answerSent()`).
 *
 * The model's declared tracks are matched to the offer's transceivers by the client's `track_mapping` (mid →
 * name) when it sends one, else by kind in declaration order.
 */
import { RTCPeerConnection, RTCRtpCodecParameters, type RTCDataChannel, type RTCDtlsTransport, type RTCRtpTransceiver } from "werift";
import type { IceCandidate, PeerState } from "../protocol/common.ts";
import { array, parse } from "../protocol/schema.ts";
import { TrackMappingEntry } from "../protocol/sessions.ts";
import { errorText, type Log } from "./log.ts";
import type { VideoOutput } from "./media/video-output.ts";
import type { TrackCapability } from "./model.ts";

export interface WebRtcOptions {
  /** ICE servers for the runtime's side (default none: host candidates only). */
  iceServers?: { urls: string | string[]; username?: string; credential?: string }[];
  /** Extra host addresses to offer; default ["127.0.0.1"] so a client on the same machine connects. */
  additionalHostAddresses?: string[];
  /** How long an answer for a client that does not trickle waits for ICE gathering (default 3 s); later candidates are trickled. */
  gatherTimeoutMs?: number;
  /**
   * Adjust werift's connection timings (`tuneTransports`, default true). false leaves werift as it is: for
   * comparison, or should a werift upgrade change the internals the adjustments rely on.
   */
  tuneWerift?: boolean;
}

export interface PeerLinkOptions {
  generation: number;
  offer: string;
  trackMapping: unknown;
  /** The client takes candidates trickled after the answer: answer at once, without waiting for gathering. */
  trickle?: boolean;
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
  /** The answer is out (`answerSent()`): local candidates are passed on from then on, those before it kept. */
  #answerSent = false;
  /** Local candidates to pass on once the answer is out (null: end of candidates). */
  #candidates: (IceCandidate | null)[] = [];
  #endOfCandidatesSent = false;
  #closed = false;

  constructor(options: PeerLinkOptions) {
    this.generation = options.generation;
    this.#options = options;
    this.#pc = newPeerConnection(options.webrtc);
    this.#subscribe(this.#pc.connectionStateChange, (state) => options.onState(state));
    this.#subscribe(this.#pc.iceConnectionStateChange, (state) => options.log("debug", `peer connection ${options.generation}: ICE ${state}`));
    this.#subscribe(this.#pc.onIceCandidate, (candidate) => {
      if (candidate) this.#localCandidate(toWire(candidate.toJSON()));
    });
    this.#subscribe(this.#pc.iceGatheringStateChange, (state) => {
      if (state === "complete") this.#localCandidate(null);
    });
    this.#subscribe(this.#pc.onDataChannel, (channel) => this.#adoptChannel(channel));
  }

  get connectionState(): PeerState {
    return this.#pc.connectionState;
  }

  get dataChannelOpen(): boolean {
    return this.#channel?.readyState === "open";
  }

  /**
   * Applies the offer, attaches the model's tracks, and returns the answer: at once for a trickling client, else
   * once gathering is done (or timed out). Call `answerSent()` once it is sent.
   */
  async answer(): Promise<string> {
    const started = performance.now();
    this.#remoteApplied = this.#pc.setRemoteDescription({ type: "offer", sdp: this.#options.offer });
    await this.#remoteApplied;
    await this.#attachTracks();
    const applied = performance.now();
    tuneTransports(this.#pc, this.#options.webrtc);
    const answer = await this.#pc.createAnswer();
    const ms = (from: number, to = performance.now()) => Math.round(to - from);
    if (this.#options.trickle) {
      // Everything in the answer but the candidates is final now; they follow as werift gathers them.
      this.#pc.setLocalDescription(answer).catch((error: unknown) => {
        this.#options.log("warn", `answer ${this.generation}: local description failed: ${errorText(error)}`);
        if (!this.#closed) this.#options.onState("failed");
      });
      this.#options.log("debug", `answer ${this.generation} in ${ms(started)} ms (offer applied ${ms(started, applied)}; candidates trickled)`);
      return answer.sdp;
    }
    await this.#pc.setLocalDescription(answer);
    const described = performance.now();
    await this.#gathered(this.#options.webrtc.gatherTimeoutMs ?? 3000);
    const sdp = this.#pc.localDescription?.sdp;
    if (!sdp) throw new Error("werift produced no local description");
    this.#options.log(
      "debug",
      `answer ${this.generation} in ${ms(started)} ms (offer applied ${ms(started, applied)}, local description ${ms(applied, described)}, gathering ${ms(described)})`,
    );
    this.#candidates = this.#candidates.filter((candidate) => candidate === null); // the others are in `sdp`
    return sdp;
  }

  /** The answer has been sent: local candidates go out from now on, in order, those kept so far first. */
  answerSent(): void {
    if (this.#answerSent) return;
    this.#answerSent = true;
    for (const candidate of this.#candidates.splice(0)) this.#localCandidate(candidate);
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
      if (capability?.direction !== "recvonly" || !output) {
        // Tracks the client would send (webcam input) are not consumed yet; unknown ones are declined.
        transceiver.setDirection(capability?.direction === "sendonly" ? "recvonly" : "inactive");
        continue;
      }
      transceiver.setDirection("sendonly");
      const { track, detach } = output.attach(transceiver.sender);
      this.#cleanups.push(detach);
      this.#subscribe(transceiver.sender.onReady, () =>
        this.#options.log("debug", `peer connection ${this.generation}: DTLS up, ${name} sender ready`),
      );
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

  #localCandidate(candidate: IceCandidate | null): void {
    if (this.#closed || this.#endOfCandidatesSent) return;
    if (!this.#answerSent) {
      this.#candidates.push(candidate);
      return;
    }
    if (candidate === null) this.#endOfCandidatesSent = true;
    this.#options.onCandidate(candidate);
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
    this.#cleanups.push(
      event.subscribe((...args: T) => {
        if (!this.#closed) fn(...args);
      }).unSubscribe,
    );
  }
}

function toWire(candidate: { candidate: string; sdpMid?: string; sdpMLineIndex?: number }): IceCandidate {
  return {
    candidate: candidate.candidate,
    ...(candidate.sdpMid !== undefined && { sdp_mid: candidate.sdpMid }),
    ...(candidate.sdpMLineIndex !== undefined && { sdp_mline_index: candidate.sdpMLineIndex }),
  };
}

/**
 * Three werift (0.25) defaults that cost every connection time, adjusted on a peer connection's transports once they
 * exist (after the remote offer is applied, before gathering starts):
 *
 * - With no STUN server configured, werift still asks stun.l.google.com for a server-reflexive candidate and its
 *   gathering (so the answer) waits for the reply, up to 5 s when UDP to it is blocked. No STUN configured means
 *   host candidates only: that query is dropped.
 * - Its ICE agent runs its check list in a loop that sleeps 20 ms between rounds, and reports ICE connected (which
 *   starts DTLS) only when the loop next wakes and finds nothing left to check — 20 ms after the pair is nominated,
 *   plus 20 ms for each remote candidate that was trickled in meanwhile (measured up to 60 ms). It is reported the
 *   moment a pair is nominated instead, with consent-to-send started as the loop would start it.
 * - As the DTLS client (the answerer's role) werift sleeps 100 ms after ICE connects before it sends its
 *   ClientHello, in case the other side's DTLS is not listening yet (a ClientHello lost then is only resent after
 *   500 ms). The ClientHello goes out at once instead, and is sent again when werift's own 100 ms are up if nothing
 *   came back: never later than werift alone, and ~100 ms earlier whenever the peer is ready (browsers are: they
 *   keep a ClientHello that arrives early).
 *
 * And one that costs sessions their video: as the controlled side, werift keeps the first nominated pair for good
 * (RFC 8445 §7.3.1.5). Browsers move on: when the client's address changes under a live connection (its NAT gives
 * the link a new port after a quiet spell, a phone's interface changes), Chrome keeps checking from the new address
 * with USE-CANDIDATE on its selected connection, its ICE stays connected — and werift keeps sending media to the old
 * address, where nothing listens, until its consent checks give up ~30 s later. A later pair the client nominates
 * becomes the selected one once its check succeeds, as libwebrtc does as the controlled side.
 *
 * Each adjustment checks that werift still has the internals it relies on, and does nothing otherwise.
 */
export function tuneTransports(pc: RTCPeerConnection, webrtc: WebRtcOptions): void {
  if (webrtc.tuneWerift === false) return;
  const stun = (webrtc.iceServers ?? []).some((server) => [server.urls].flat().some((url) => /^stuns?:/i.test(url)));
  for (const transport of pc.dtlsTransports) {
    const connection = transport.iceTransport.connection as unknown as { stunServer?: unknown };
    if (!stun && "stunServer" in connection) connection.stunServer = undefined;
    followRenomination(connection); // first: connectedOnNomination wraps checkComplete for connect() only
    connectedOnNomination(connection);
    helloAtOnce(transport);
  }
}

interface WeriftIceConnection {
  connect(): Promise<void>;
  checkComplete(pair: unknown): void;
  queryConsent(): void;
  setState(state: string): void;
  nominated: unknown;
  checkListDone: boolean;
  state: string;
}

function connectedOnNomination(target: object): void {
  const connection = target as Partial<WeriftIceConnection>;
  if (
    typeof connection.connect !== "function" ||
    typeof connection.checkComplete !== "function" ||
    typeof connection.queryConsent !== "function" ||
    typeof connection.setState !== "function"
  )
    return;
  const ice = connection as WeriftIceConnection;
  const connect = ice.connect.bind(ice);
  const checkComplete = ice.checkComplete;
  ice.connect = () =>
    new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        ice.checkComplete = checkComplete;
        settled = true;
      };
      ice.checkComplete = function (pair) {
        checkComplete.call(this, pair);
        if (settled || !ice.nominated || !ice.checkListDone || ice.state === "closed" || ice.state === "failed") return;
        settle();
        ice.queryConsent(); // what connect() does once its loop ends (sending needs consent); it does it again then
        ice.setState("connected");
        resolve();
      };
      connect().then(
        () => {
          if (!settled) {
            settle();
            resolve();
          }
        },
        (error: unknown) => {
          if (!settled) {
            settle();
            reject(error);
          }
        },
      );
    });
}

/** werift's CandidatePairState.SUCCEEDED. */
const PAIR_SUCCEEDED = 3;

interface WeriftPair {
  id: unknown;
  state: unknown;
  nominated?: boolean;
  remoteNominated?: boolean;
}

function followRenomination(target: object): void {
  const connection = target as Partial<WeriftIceConnection> & { resetNominatedPair?: unknown; iceControlling?: unknown };
  if (
    typeof connection.checkComplete !== "function" ||
    typeof connection.resetNominatedPair !== "function" ||
    typeof connection.iceControlling !== "boolean"
  )
    return;
  const ice = connection as WeriftIceConnection & { resetNominatedPair(): void; iceControlling: boolean };
  const checkComplete = ice.checkComplete;
  ice.checkComplete = function (pair) {
    const next = pair as WeriftPair;
    const current = ice.nominated as WeriftPair | undefined;
    const renominated = current !== undefined && next.id !== current.id && next.remoteNominated === true && next.nominated === true;
    if (renominated && !ice.iceControlling && next.state === PAIR_SUCCEEDED) ice.resetNominatedPair(); // checkComplete takes it as the first
    checkComplete.call(this, pair);
  };
}

interface WeriftDtlsClient {
  connect(): Promise<void>;
  transport: { send(data: Buffer, address?: unknown): unknown };
  dtls: { flight: number };
}

function helloAtOnce(transport: RTCDtlsTransport): void {
  const { unSubscribe } = transport.onStateChange.subscribe((state) => {
    if (state !== "connecting") return;
    unSubscribe();
    // start() creates its DtlsClient synchronously right after this event, then sleeps: take over before it wakes.
    queueMicrotask(() => {
      const client = transport.dtls as unknown as Partial<WeriftDtlsClient> | undefined;
      if (transport.role !== "client" || typeof client?.connect !== "function" || typeof client.transport?.send !== "function" || !client.dtls)
        return;
      const { transport: socket, dtls } = client as WeriftDtlsClient;
      const connect = client.connect.bind(client);
      const send = socket.send;
      const hello: [Buffer, unknown][] = [];
      socket.send = (data, address) => {
        hello.push([data, address]);
        return send(data, address);
      }; // the first flight goes out synchronously
      const started = connect();
      socket.send = send;
      started.catch(() => undefined); // werift's own connect() call below reports failures
      client.connect = () => {
        if (dtls.flight === 1) for (const [data, address] of hello) void Promise.resolve(send(data, address)).catch(() => undefined);
        return started;
      };
    });
  });
}
