/**
 * The client's peer connections: one PeerLink per generation, built from the session's capabilities and the
 * `ice_servers` the gateway sent. A new generation starts on the first connect, after a reconnect whose previous
 * link is unusable, and on every ICE restart; the previous link keeps playing until the new one connects.
 */
import type { IceCandidate, IceServer } from "../../protocol/common.ts";
import type { ClientFrame } from "../../protocol/signaling.ts";
import { sdkError, type ReactorError } from "./errors.ts";
import { PeerLink, warmPeerConnection, type RTCPeerConnectionConstructor, type TrackSpec } from "./peer-link.ts";

export interface MediaOptions {
  RTCPeerConnection: RTCPeerConnectionConstructor | undefined;
  iceTransportPolicy: RTCIceTransportPolicy;
  send(frame: ClientFrame): boolean;
  onTrack(name: string, track: MediaStreamTrack, stream: MediaStream): void;
  /** The current link connected, or stopped being connected, or was replaced. */
  onChange(): void;
  /** The current link lost its network path. */
  onInterrupted(): void;
  onError(error: ReactorError): void;
}

/** How often a generation may be refused as stale before giving up (each refusal moves past it). */
const STALE_RETRIES = 8;
/** After a network change, a connected link that receives nothing for this long has lost its path. */
const PATH_PROBE_MS = 1000;

export class Media {
  readonly #options: MediaOptions;
  #iceServers: IceServer[] | undefined;
  #tracks: TrackSpec[] | undefined;
  #generation = 0;
  #staleRefusals = 0;
  /** Generations already reported as finding no path (ICE_FAILED), so each is said once. */
  readonly #reportedNoPath = new Set<number>();
  #current: PeerLink | undefined;
  #previous: PeerLink | undefined;
  /** Made ahead of time for the next generation (see warmPeerConnection). */
  #spare: RTCPeerConnection | undefined;

  constructor(options: MediaOptions) {
    this.#options = options;
  }

  /** Without an RTCPeerConnection (Node without one), sessions, commands and messages still work; media does not. */
  get supported(): boolean {
    return this.#options.RTCPeerConnection !== undefined;
  }

  get connected(): boolean {
    return this.#current?.connected ?? false;
  }

  get current(): PeerLink | undefined {
    return this.#current;
  }

  /**
   * The generation of a link worth keeping across a new signaling socket (answered, not closed, path not lost), or
   * 0. The gateway is told it when the socket opens: for any other generation, whatever the runtime last said about
   * its peer connection is stale, and the session is not ACTIVE again until a new generation connects.
   */
  get heldGeneration(): number {
    const link = this.#current;
    return link?.answered && !link.closed && !link.interrupted ? link.generation : 0;
  }

  /**
   * After a network change: has the current link lost its path? Yes if ICE says so, or if it is connected but
   * nothing arrives for a moment (the old path may be gone before ICE notices). A link still negotiating, or none,
   * is left to negotiate: no.
   */
  async pathLost(): Promise<boolean> {
    const link = this.#current;
    if (!link || link.closed || !link.answered) return false;
    if (link.interrupted) return true;
    if (!link.connected) return false;
    const before = await link.bytesReceived();
    await new Promise((resolve) => setTimeout(resolve, PATH_PROBE_MS));
    if (link !== this.#current || link.closed) return false;
    return link.interrupted || (await link.bytesReceived()) <= before;
  }

  /** Makes the next generation's peer connection now, while the caller waits for the gateway anyway. */
  warmUp(): void {
    const RTCPeerConnection = this.#options.RTCPeerConnection;
    const usable = this.#current && !this.#current.closed && !this.#current.interrupted;
    if (RTCPeerConnection && !this.#spare && !usable) this.#spare = warmPeerConnection(RTCPeerConnection);
  }

  setTracks(tracks: TrackSpec[]): void {
    this.#tracks = tracks;
    this.ensure();
  }

  /**
   * The gateway's ICE servers: the first ones after a (re)connect start a generation if needed; fresh ones while a
   * link is up (TURN credentials renewed before they expire) take effect through an ICE restart.
   */
  setIceServers(servers: IceServer[]): void {
    const renewed = this.#iceServers !== undefined;
    this.#iceServers = servers;
    const link = this.#current;
    if (renewed && link && !link.closed && !link.interrupted) this.restart();
    else this.ensure();
  }

  /**
   * A socket was welcomed: a link whose offer may have been lost with the old socket cannot be trusted, and the
   * gateway sends fresh ICE servers (TURN credentials expire) before any new generation starts.
   */
  onWelcome(): void {
    this.#iceServers = undefined;
    const link = this.#current;
    if (link && (!link.answered || link.interrupted || link.closed)) this.#discardCurrent();
  }

  /** Starts a generation unless the current link is usable. */
  ensure(): void {
    const link = this.#current;
    if (link && !link.closed && !link.interrupted) return;
    this.#startGeneration();
  }

  /** ICE restart: a new generation on the same session, the old link kept until the new one connects. */
  restart(): boolean {
    return this.#startGeneration();
  }

  onAnswer(generation: number, sdp: string): void {
    const link = this.#linkFor(generation);
    if (link) link.applyAnswer(sdp).catch((error: unknown) => this.#failed(link, `answer rejected: ${String(error)}`));
  }

  onRemoteCandidate(generation: number, candidate: IceCandidate | null): void {
    // A candidate the browser refuses (another network family, say) is not worth failing the connection over.
    this.#linkFor(generation)
      ?.addRemoteCandidate(candidate)
      .catch(() => undefined);
  }

  /** The gateway already has a generation this high: move past it and offer again. */
  onStaleGeneration(generation: number): void {
    if (this.#current?.generation !== generation) return;
    if (++this.#staleRefusals > STALE_RETRIES) return this.#failed(this.#current, "the gateway refused every offer as stale");
    this.#discardCurrent();
    this.#startGeneration();
  }

  /** Closes every link (disconnect, or a dropped connection). */
  closeAll(): void {
    this.#spare?.close();
    this.#spare = undefined;
    this.#previous?.close();
    this.#current?.close();
    this.#previous = undefined;
    this.#current = undefined;
  }

  #startGeneration(): boolean {
    const RTCPeerConnection = this.#options.RTCPeerConnection;
    if (!RTCPeerConnection || !this.#tracks || !this.#iceServers) return false;
    if (this.#current) {
      this.#previous?.close();
      this.#previous = this.#current;
    }
    const link = new PeerLink({
      RTCPeerConnection,
      iceServers: this.#iceServers,
      iceTransportPolicy: this.#options.iceTransportPolicy,
      tracks: this.#tracks,
      generation: ++this.#generation,
      spare: this.#spare,
      send: this.#options.send,
      onTrack: (name, track, stream) => this.#current === link && this.#options.onTrack(name, track, stream),
      onStateChange: (changed) => this.#onLinkState(changed),
      onIceServerError: (url, code, text) => {
        if (link !== this.#current) return;
        const what = code === 401 ? "refused the credentials (401): wrong or expired TURN credential" : `failed (${code} ${text})`;
        this.#options.onError(sdkError("ICE_SERVER_ERROR", { recoverable: true, component: "api", message: `ICE server ${url} ${what}.` }));
      },
    });
    this.#spare = undefined;
    this.#current = link;
    link.start().catch((error: unknown) => this.#failed(link, `offer failed: ${String(error)}`));
    this.#options.onChange();
    return true;
  }

  #onLinkState(link: PeerLink): void {
    if (link !== this.#current) return; // an older generation: its fate no longer matters
    if (link.connected) {
      this.#staleRefusals = 0;
      this.#previous?.close();
      this.#previous = undefined;
    }
    this.#options.onChange();
    if (link.failed && !link.everConnected) this.#noPath(link);
    if (link.interrupted) this.#options.onInterrupted();
  }

  /**
   * A generation that never connected has failed: the networks between client and GPU let no candidate pair
   * through. Said once per generation, with what would help — the restarts that follow try again, but a network
   * that needs TURN will not change its mind.
   */
  #noPath(link: PeerLink): void {
    if (this.#reportedNoPath.has(link.generation)) return;
    this.#reportedNoPath.add(link.generation);
    const urls = (this.#iceServers ?? []).flatMap((server) => [server.urls].flat());
    const turn = urls.some((url) => /^turns?:/i.test(url));
    const relayOnly = this.#options.iceTransportPolicy === "relay";
    const why = turn
      ? `not even through the TURN server${urls.filter((url) => /^turns?:/i.test(url)).length > 1 ? "s" : ""} (${relayOnly ? "relay only" : "tried with direct paths"}): is TURN reachable from this network?`
      : "and the gateway offered no TURN server: behind a symmetric NAT or a firewall that blocks UDP, configure TURN on the gateway (docs/networks.md).";
    this.#options.onError(
      sdkError("ICE_FAILED", {
        recoverable: true,
        component: "gpu",
        message: `Peer connection ${link.generation}: no candidate pair connected, ${why}`,
      }),
    );
  }

  #linkFor(generation: number): PeerLink | undefined {
    return this.#current?.generation === generation ? this.#current : undefined;
  }

  /** Drops the current link; the previous one, if any, plays on until a new generation connects. */
  #discardCurrent(): void {
    this.#current?.close();
    this.#current = undefined;
  }

  #failed(link: PeerLink | undefined, detail: string): void {
    if (link !== this.#current) return;
    this.#options.onError(
      sdkError("PEER_CONNECTION_FAILED", { recoverable: true, component: "gpu", message: `Peer connection ${link?.generation}: ${detail}` }),
    );
    this.#options.onInterrupted();
  }
}
