/**
 * Connection figures from `getStats()`, sampled periodically: round-trip time and candidate type of the selected
 * ICE pair, and the received video's frame rate, bitrate and decoded frames.
 */
export interface ClientStats {
  /** Round-trip time of the selected ICE candidate pair, ms. */
  rttMs: number | undefined;
  /** Local candidate type of the selected pair: "host", "srflx", "prflx" or "relay" (TURN). */
  candidateType: string | undefined;
  /** For a relay candidate: how it reaches the TURN server, "udp", "tcp" or "tls". */
  relayProtocol: string | undefined;
  /**
   * Video frames decoded per second over the last sample period (framesDecoded deltas: a burst at the start of a
   * peer connection, or a stall, is not smoothed away by the browser's own estimate). Undefined for the first
   * period of each peer connection generation, and until the first frame is decoded.
   */
  fps: number | undefined;
  /** Received media bitrate over the last sample period, kbit/s. */
  bitrateKbps: number | undefined;
  framesDecoded: number | undefined;
  /** The peer connection generation these figures come from. */
  generation: number;
  /** Date.now() of the sample. */
  timestamp: number;
}

type Report = Record<string, unknown> & { type: string; id: string };

interface Source {
  pc: RTCPeerConnection;
  generation: number;
}

export class StatsSampler {
  readonly #intervalMs: number;
  readonly #onSample: (stats: ClientStats) => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  #source: Source | undefined;
  #previous: { generation: number; bytes: number; frames: number; at: number } | undefined;

  constructor(intervalMs: number, onSample: (stats: ClientStats) => void) {
    this.#intervalMs = intervalMs;
    this.#onSample = onSample;
  }

  /** Samples `source` from now on (the current peer connection), or nothing when undefined. */
  follow(source: Source | undefined): void {
    this.#source = source;
    if (source && this.#timer === undefined && this.#intervalMs > 0) {
      this.#timer = setInterval(() => void this.sample(), this.#intervalMs);
    } else if (!source) {
      this.stop();
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#source = undefined;
    this.#previous = undefined;
  }

  async sample(): Promise<ClientStats | undefined> {
    const source = this.#source;
    if (!source) return undefined;
    let reports: Report[];
    try {
      reports = [...(await source.pc.getStats()).values()] as Report[];
    } catch {
      return undefined; // closed meanwhile
    }
    if (this.#source !== source) return undefined;
    const stats = this.#summarize(reports, source.generation);
    this.#onSample(stats);
    return stats;
  }

  #summarize(reports: Report[], generation: number): ClientStats {
    const byId = new Map(reports.map((report) => [report.id, report]));
    const pair = selectedPair(reports, byId);
    const local = pair ? byId.get(pair.localCandidateId as string) : undefined;
    const video = reports.find((report) => report.type === "inbound-rtp" && report.kind === "video");
    const bytes = reports
      .filter((report) => report.type === "inbound-rtp")
      .reduce((sum, report) => sum + ((report.bytesReceived as number | undefined) ?? 0), 0);
    const frames = (video?.framesDecoded as number | undefined) ?? 0;
    const now = Date.now();
    const previous = this.#previous?.generation === generation ? this.#previous : undefined;
    this.#previous = { generation, bytes, frames, at: now };
    // From a period that started with frames already decoded: the first frames of a connection come in a burst.
    const fps =
      previous && previous.frames > 0 && now > previous.at ? Math.round(((frames - previous.frames) * 10_000) / (now - previous.at)) / 10 : undefined;
    const rtt = pair?.currentRoundTripTime as number | undefined;
    return {
      rttMs: rtt === undefined ? undefined : Math.round(rtt * 1000 * 10) / 10,
      candidateType: local?.candidateType as string | undefined,
      relayProtocol: local?.relayProtocol as string | undefined,
      fps,
      bitrateKbps: previous && now > previous.at ? Math.round(((bytes - previous.bytes) * 8) / (now - previous.at)) : undefined,
      framesDecoded: video?.framesDecoded as number | undefined,
      generation,
      timestamp: now,
    };
  }
}

function selectedPair(reports: Report[], byId: Map<string, Report>): Report | undefined {
  const transport = reports.find((report) => report.type === "transport" && report.selectedCandidatePairId);
  const selected = transport ? byId.get(transport.selectedCandidatePairId as string) : undefined;
  return selected ?? reports.find((report) => report.type === "candidate-pair" && report.nominated && report.state === "succeeded");
}
