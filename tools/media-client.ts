/**
 * A client peer connection in Node (werift) for tests and benchmarks of the runtime agent: it offers to receive
 * video (and optionally opens the `data` channel the official client opens), counts the RTP packets and VP8 key
 * frames that arrive, and speaks the `{ scope, data }` data channel envelope. Signaling is up to the caller: the
 * native socket (`offer`/`answer` frames) or the official REST transport (`sdp_params`), both helpers below.
 */
import { RTCPeerConnection, type RTCDataChannel } from "werift";
import { vp8Codec } from "../runtime/peer.ts";
import { rtpFields, startsVp8KeyFrame } from "../runtime/media/rtp.ts";
import type { NodePeer } from "./peers.ts";

export class MediaClient {
  readonly pc: RTCPeerConnection;
  /** RTP packets and key frames received on the video track. */
  packets = 0;
  keyFrames = 0;
  /** Envelopes received on the data channel, parsed. */
  readonly channelMessages: { scope: string; data: unknown }[] = [];
  #channel: RTCDataChannel | undefined;

  constructor(options: { dataChannel?: boolean } = {}) {
    this.pc = new RTCPeerConnection({
      iceServers: [],
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ["127.0.0.1"],
      bundlePolicy: "max-bundle", // an offering werift leaks sockets on close() without it
      codecs: { video: [vp8Codec()] },
    });
    this.pc.addTransceiver("video", { direction: "recvonly" });
    this.pc.onTrack.subscribe((track) =>
      track.onReceiveRtp.subscribe((packet) => {
        this.packets++;
        const raw = packet.serialize();
        const fields = rtpFields(raw);
        if (fields && startsVp8KeyFrame(raw, fields.payloadOffset)) this.keyFrames++;
      }),
    );
    if (options.dataChannel) {
      this.#channel = this.pc.createDataChannel("data");
      this.#channel.onMessage.subscribe((data) => this.channelMessages.push(JSON.parse(data.toString()) as { scope: string; data: unknown }));
    }
  }

  /** The offer, once ICE gathering is complete (candidates inside, as the official client sends it). */
  async offer(): Promise<{ sdp: string; videoMid: string }> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    if (this.pc.iceGatheringState !== "complete") {
      await new Promise<void>((resolve) => this.pc.iceGatheringStateChange.subscribe((state) => state === "complete" && resolve()));
    }
    const videoMid = this.pc.getTransceivers().find((transceiver) => transceiver.kind === "video")!.mid!;
    return { sdp: this.pc.localDescription!.sdp, videoMid };
  }

  async accept(answer: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer });
  }

  get connectionState(): string {
    return this.pc.connectionState;
  }

  get channelOpen(): boolean {
    return this.#channel?.readyState === "open";
  }

  /** Sends `{ scope, data: { type, data } }` on the data channel. */
  sendCommand(type: string, data: unknown, scope: "application" | "runtime" = "application"): void {
    this.sendRaw(JSON.stringify({ scope, data: { type, data } }));
  }

  sendRaw(text: string): void {
    if (this.#channel?.readyState !== "open") throw new Error("the data channel is not open");
    this.#channel.send(text);
  }

  async close(): Promise<void> {
    await this.pc.close();
  }
}

/** Waits until `check` holds, polling every 50 ms; fails with `what` after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Negotiates `client` over a native signaling socket (`offer` → `answer`), as generation `generation`. */
export async function negotiateNative(signal: NodePeer, client: MediaClient, generation = 1): Promise<void> {
  const { sdp } = await client.offer();
  signal.send({ type: "offer", generation, sdp });
  const answer = await signal.next((frame) => frame.type === "answer" && frame.generation === generation, 30_000);
  await client.accept(answer.sdp as string);
}

/** Negotiates `client` through the official client's REST transport (POST/PUT sdp_params, then GET until 200). */
export async function negotiateRest(
  gatewayUrl: string,
  jwt: string,
  sessionId: string,
  client: MediaClient,
  method: "POST" | "PUT" = "POST",
): Promise<void> {
  const { sdp, videoMid } = await client.offer();
  const base = `${gatewayUrl}/sessions/${sessionId}/transport/webrtc/sdp_params`;
  const headers = { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" };
  const posted = await fetch(base, {
    method,
    headers,
    body: JSON.stringify({ sdp_offer: sdp, track_mapping: [{ mid: videoMid, name: "main_video", kind: "video", direction: "recvonly" }] }),
  });
  if (posted.status !== 202) throw new Error(`${method} sdp_params: ${posted.status} ${await posted.text()}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const response = await fetch(base, { headers });
    if (response.status === 200) return client.accept(((await response.json()) as { sdp_answer: string }).sdp_answer);
    if (response.status !== 202) throw new Error(`GET sdp_params: ${response.status} ${await response.text()}`);
    await response.body?.cancel();
    if (Date.now() > deadline) throw new Error("no answer within 30 s");
  }
}

/** Waits until the session is assigned (GET /sessions/{id} returns capabilities). */
export async function waitAssigned(gatewayUrl: string, jwt: string, sessionId: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await fetch(`${gatewayUrl}/sessions/${sessionId}`, { headers: { Authorization: `Bearer ${jwt}` } });
    const body = (await response.json()) as { capabilities?: unknown; state: string };
    if (body.capabilities) return;
    if (Date.now() > deadline) throw new Error(`session ${sessionId} not assigned (state ${body.state})`);
  }
}
