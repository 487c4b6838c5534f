/**
 * One peer connection generation: an offer with one transceiver per capability track (the model's declared
 * direction; no data channel — commands and messages go through the gateway), trickle ICE both ways, and the
 * answer. Every ICE restart or reconnect is a new PeerLink with a higher generation; the gateway drops whatever
 * belongs to older ones, and so does the client.
 */
import type { IceCandidate, IceServer } from "../../protocol/common.ts";
import type { ClientFrame } from "../../protocol/signaling.ts";

export type RTCPeerConnectionConstructor = new (configuration?: RTCConfiguration) => RTCPeerConnection;

export interface TrackSpec {
  name: string;
  kind: "video" | "audio";
  direction: "recvonly" | "sendonly";
}

export interface PeerLinkOptions {
  RTCPeerConnection: RTCPeerConnectionConstructor;
  iceServers: IceServer[];
  iceTransportPolicy: RTCIceTransportPolicy;
  tracks: TrackSpec[];
  generation: number;
  /** A peer connection made ahead of time (see `warmPeerConnection`); default: a new one. */
  spare?: RTCPeerConnection;
  send(frame: ClientFrame): boolean;
  onTrack(name: string, track: MediaStreamTrack, stream: MediaStream): void;
  /** The connection or ICE state changed. */
  onStateChange(link: PeerLink): void;
  /** A STUN/TURN server failed for this link (`icecandidateerror`): once per server URL. */
  onIceServerError(url: string, code: number, text: string): void;
}

const configuration = (iceServers: IceServer[], iceTransportPolicy: RTCIceTransportPolicy = "all"): RTCConfiguration => ({
  iceServers,
  iceTransportPolicy,
  bundlePolicy: "max-bundle",
});

/**
 * A peer connection created before the session's capabilities and ICE servers are known, while the session is
 * being created: a browser's first RTCPeerConnection in a page is slow to make, and this takes it off the path.
 */
export function warmPeerConnection(RTCPeerConnection: RTCPeerConnectionConstructor): RTCPeerConnection {
  return new RTCPeerConnection(configuration([]));
}

export class PeerLink {
  readonly generation: number;
  readonly pc: RTCPeerConnection;
  readonly #options: PeerLinkOptions;
  readonly #trackNames = new Map<RTCRtpTransceiver, string>();
  /** Remote candidates that came before the answer (they cannot be added earlier). */
  #early: IceCandidate[] = [];
  #answered = false;
  #gatheringDone = false;
  #closed = false;

  constructor(options: PeerLinkOptions) {
    this.#options = options;
    this.generation = options.generation;
    this.pc = options.spare ?? new options.RTCPeerConnection(configuration([]));
    // ICE servers only matter from setLocalDescription on, when gathering starts: a spare takes them now.
    this.pc.setConfiguration(configuration(options.iceServers, options.iceTransportPolicy));
    for (const track of options.tracks) {
      this.#trackNames.set(this.pc.addTransceiver(track.kind, { direction: track.direction }), track.name);
    }
    this.pc.onicecandidate = (event) => this.#sendCandidate(event.candidate);
    this.pc.ontrack = (event) => this.#onTrack(event);
    this.pc.onconnectionstatechange = () => this.#stateChanged();
    this.pc.oniceconnectionstatechange = () => this.#stateChanged();
    this.pc.onicecandidateerror = (event) => this.#iceServerError(event as RTCPeerConnectionIceErrorEvent);
  }

  /** Creates the offer and sends it; candidates follow as they are gathered. */
  async start(): Promise<void> {
    const offer = await this.pc.createOffer();
    if (this.#closed) return;
    this.#options.send({ type: "offer", generation: this.generation, sdp: offer.sdp ?? "" });
    await this.pc.setLocalDescription(offer);
  }

  get answered(): boolean {
    return this.#answered;
  }

  get connected(): boolean {
    return this.pc.connectionState === "connected";
  }

  /** ICE gave up: no candidate pair worked (or a working path died and stayed dead). */
  get failed(): boolean {
    return this.pc.connectionState === "failed" || this.pc.iceConnectionState === "failed";
  }

  /** The link was connected at some point: a failure now is a lost path, not a network that never let it through. */
  get everConnected(): boolean {
    return this.#everConnected;
  }

  /**
   * ICE lost its path (a network change): worth a restart. A link that never connected has no path to lose: while
   * its checks run, `disconnected` only means no answer yet, and restarting then would start the checks over
   * before they could finish; it is interrupted once ICE gives up (`failed`).
   */
  get interrupted(): boolean {
    if (!this.#everConnected) return this.failed;
    const { connectionState, iceConnectionState } = this.pc;
    return connectionState === "failed" || iceConnectionState === "disconnected" || iceConnectionState === "failed";
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes received on this connection so far (media, RTCP and ICE: anything at all means the path works). */
  async bytesReceived(): Promise<number> {
    let reports: { type: string; bytesReceived?: number }[];
    try {
      reports = [...(await this.pc.getStats()).values()] as typeof reports;
    } catch {
      return 0; // closed meanwhile
    }
    // The transport counts everything; implementations without transport stats (werift) count media per stream.
    const transports = reports.filter((report) => report.type === "transport");
    const counted = transports.length > 0 ? transports : reports.filter((report) => report.type === "inbound-rtp");
    return counted.reduce((sum, report) => sum + (report.bytesReceived ?? 0), 0);
  }

  async applyAnswer(sdp: string): Promise<void> {
    if (this.#answered || this.#closed) return; // the gateway repeats the answer after a reconnect
    this.#answered = true;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    const early = this.#early;
    this.#early = [];
    for (const candidate of early) await this.#add(candidate);
  }

  async addRemoteCandidate(candidate: IceCandidate | null): Promise<void> {
    if (candidate === null || candidate.candidate === "" || this.#closed) return; // end of candidates: nothing to do
    if (!this.#answered) this.#early.push(candidate);
    else await this.#add(candidate);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.onicecandidateerror = null;
    this.pc.close();
  }

  readonly #failedServers = new Set<string>();
  #everConnected = false;

  #iceServerError({ url, errorCode, errorText }: RTCPeerConnectionIceErrorEvent): void {
    // 701: no route to that server from one of the host's interfaces, normal on multi-homed hosts; not worth a report.
    if (this.#closed || !url || errorCode === 701 || this.#failedServers.has(url)) return;
    this.#failedServers.add(url);
    this.#options.onIceServerError(url, errorCode, errorText);
  }

  async #add(candidate: IceCandidate): Promise<void> {
    const mid = candidate.sdp_mid ?? null;
    const index = candidate.sdp_mline_index ?? (mid === null ? 0 : null);
    await this.pc.addIceCandidate({ candidate: candidate.candidate, sdpMid: mid, sdpMLineIndex: index });
  }

  #sendCandidate(candidate: RTCIceCandidate | null): void {
    if (this.#closed || this.#gatheringDone) return;
    const end = candidate === null || candidate.candidate === "";
    if (end) this.#gatheringDone = true;
    this.#options.send({
      type: "ice",
      generation: this.generation,
      candidate: end ? null : { candidate: candidate.candidate, sdp_mid: candidate.sdpMid, sdp_mline_index: candidate.sdpMLineIndex },
    });
  }

  #onTrack(event: RTCTrackEvent): void {
    const name = this.#trackNames.get(event.transceiver) ?? event.track.kind;
    // The runtime's answer carries no msid, so the browser gives no stream: make one. (Outside browsers, whatever
    // the RTCPeerConnection implementation provides.)
    const stream = event.streams[0] ?? (typeof MediaStream === "function" ? new MediaStream([event.track]) : (undefined as unknown as MediaStream));
    this.#options.onTrack(name, event.track, stream);
  }

  #stateChanged(): void {
    if (this.connected) this.#everConnected = true;
    if (!this.#closed) this.#options.onStateChange(this);
  }
}
