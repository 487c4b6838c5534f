/**
 * A floor for the connect benchmarks: the smallest server both clients can connect to, answering every call at
 * once and in one process with the runtime's own media path — werift answering through `PeerLink` (runtime/peer.ts,
 * with the same tuning), the demo model's encoder kept warm (`EncoderPool`) and its key frame replayed through a
 * `VideoOutput`. What it leaves out is exactly what the real setup adds: the gateway (Worker, Durable Objects,
 * auth, limits) and the agent's signaling hops. A client connecting to it pays only for itself, the browser and
 * WebRTC.
 *
 * It speaks just enough of both protocols for a connect: the official client's REST calls (`POST /sessions`,
 * `GET /sessions/{id}`, `GET ice_servers`, `POST|PUT|GET sdp_params`, `DELETE`; CORS like the gateway's, preflights
 * cached a day) and the native socket (`welcome`, `status`, `ice_servers`, `offer` → `answer` + trickled `ice`,
 * `ACTIVE` once the peer connection is up, `close`). Sessions are always assigned; tokens are not checked.
 *
 * `GET /raw` serves a page for the barest floor: one RTCPeerConnection in the page, signaled with two same-origin
 * fetches (no client library, no preflight), the same answerer behind them.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { TestPatternEncoder } from "../../runtime/demo/encoder.ts";
import { EncoderPool, type Feed } from "../../runtime/demo/encoder-pool.ts";
import type { IceCandidate, PeerState } from "../../protocol/common.ts";
import { PROTOCOL_VERSION } from "../../protocol/common.ts";
import type { Log } from "../../runtime/log.ts";
import { VideoOutput } from "../../runtime/media/video-output.ts";
import { capabilitiesOf, type AnyModel } from "../../runtime/model.ts";
import { PeerLink } from "../../runtime/peer.ts";

export interface InstantGateway {
  url: string;
  close(): Promise<void>;
}

interface Served {
  id: string;
  output: VideoOutput;
  feed: Feed;
  peer?: PeerLink;
  answer?: string;
  answerWaiters: (() => void)[];
  onPeerState?: (state: PeerState) => void;
}

const quiet: Log = () => undefined;

export async function startInstantGateway(options: { model: AnyModel; log?: Log }): Promise<InstantGateway> {
  const log = options.log ?? quiet;
  const capabilities = capabilitiesOf(options.model);
  const encoders = new EncoderPool({
    warm: 1,
    start: (relay) =>
      TestPatternEncoder.start({
        text: "floor",
        log: (level, message) => relay.log(level, message),
        onPacket: (packet) => relay.write(packet),
        onFailure: (error) => relay.fail(error),
      }),
    reset: async () => undefined,
    log: () => log,
  });
  await encoders.start();
  const sessions = new Map<string, Served>();

  const open = async (): Promise<Served> => {
    const id = `ses_${randomUUID().replaceAll("-", "").slice(0, 22)}`;
    const output = new VideoOutput("main_video");
    const feed = await encoders.take({ write: (packet) => output.writeRtp(packet), fail: () => undefined, log });
    const served: Served = { id, output, feed, answerWaiters: [] };
    sessions.set(id, served);
    return served;
  };
  const end = (served: Served) => {
    served.peer?.close();
    sessions.delete(served.id);
    void encoders.give(served.feed);
  };
  /**
   * Answers `offer` with werift (at once for a trickling client); `deliver` sends the answer, then `onCandidate`
   * gets the candidates not in it (then null).
   */
  const negotiate = (
    served: Served,
    offer: string,
    trackMapping: unknown,
    trickle: boolean,
    deliver: (sdp: string) => void,
    onCandidate: (candidate: IceCandidate | null) => void,
  ) => {
    served.peer?.close();
    served.answer = undefined;
    const peer: PeerLink = new PeerLink({
      generation: (served.peer?.generation ?? 0) + 1,
      offer,
      trackMapping,
      trickle,
      tracks: options.model.tracks,
      output: (name) => (name === "main_video" ? served.output : undefined),
      webrtc: {},
      log,
      onCandidate,
      onState: (state) => served.peer === peer && served.onPeerState?.(state),
      onDataChannelMessage: () => undefined,
      onDataChannelOpen: () => undefined,
      onDataChannelClosed: () => undefined,
    });
    served.peer = peer;
    return peer.answer().then((sdp) => {
      if (served.peer !== peer) return;
      served.answer = sdp;
      for (const wake of served.answerWaiters.splice(0)) wake();
      deliver(sdp);
      peer.answerSent();
    });
  };
  const view = (served: Served, state = "WAITING") => ({
    session_id: served.id,
    state,
    cluster: "floor",
    model: { name: options.model.name, version: options.model.version ?? "1" },
    server_info: { server_version: "floor" },
    selected_transport: { protocol: "webrtc", version: "1.0" },
    capabilities,
  });

  const server = createServer((request, response) => {
    void handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500);
      response.end(String(error));
    });
  });
  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const origin = request.headers.origin;
    const cors = origin
      ? {
          "Access-Control-Allow-Origin": origin,
          Vary: "Origin",
          "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
          "Access-Control-Allow-Headers": "Authorization, Content-Type, Reactor-API-Version, Reactor-API-Accept-Version, Reactor-WebRTC-Version",
          "Access-Control-Max-Age": "86400",
        }
      : {};
    const send = (status: number, body?: unknown, type = "application/json") => {
      response.writeHead(status, { ...cors, ...(body !== undefined && { "Content-Type": type }) });
      response.end(body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body));
    };
    if (request.method === "OPTIONS") return send(204);
    const path = new URL(request.url ?? "/", "http://floor").pathname;
    const body = async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      return chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>) : {};
    };
    if (request.method === "GET" && path === "/raw") return send(200, RAW_PAGE, "text/html; charset=utf-8");
    if (request.method === "POST" && path === "/raw/offer") {
      const { sdp } = (await body()) as { sdp: string };
      const served = await open();
      await negotiate(
        served,
        sdp,
        undefined,
        false,
        () => undefined,
        () => undefined,
      );
      return send(200, { id: served.id, sdp: served.answer });
    }
    if (request.method === "POST" && path === "/raw/candidate") {
      const { id, candidate } = (await body()) as { id: string; candidate: IceCandidate | null };
      await sessions.get(id)?.peer?.addRemoteCandidate(candidate);
      return send(204);
    }
    if (request.method === "POST" && path === "/raw/end") {
      const served = sessions.get(((await body()) as { id: string }).id);
      if (served) end(served);
      return send(204);
    }
    if (request.method === "POST" && path === "/sessions") return send(200, view(await open()));
    const match = /^\/sessions\/([^/]+)(\/info|\/transport\/webrtc\/(ice_servers|sdp_params))?$/.exec(path);
    const served = match ? sessions.get(match[1]!) : undefined;
    if (!match || !served) return send(404, { error: { code: "SESSION_NOT_FOUND", message: "No such session." } });
    const [, , tail, transport] = match;
    if (request.method === "DELETE" && !tail) {
      end(served);
      return send(200, view(served, "CLOSED"));
    }
    if (request.method === "GET" && !tail) return send(200, view(served));
    if (request.method === "GET" && tail === "/info") return send(200, { session_id: served.id, state: "WAITING", cluster: "floor" });
    if (request.method === "GET" && transport === "ice_servers") return send(200, { ice_servers: [] });
    if ((request.method === "POST" || request.method === "PUT") && transport === "sdp_params") {
      const { sdp_offer, track_mapping } = (await body()) as { sdp_offer: string; track_mapping?: unknown };
      void negotiate(
        served,
        sdp_offer,
        track_mapping,
        false,
        () => undefined,
        () => undefined,
      );
      return send(202, { connection_id: "conn_1" });
    }
    if (request.method === "GET" && transport === "sdp_params") {
      if (served.answer === undefined) await new Promise<void>((resolve) => served.answerWaiters.push(resolve));
      return send(200, { sdp_answer: served.answer, connection_id: "conn_1" });
    }
    return send(404, { error: { code: "NOT_FOUND", message: "No such route." } });
  }

  const sockets = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has("reactor.v1") ? "reactor.v1" : false) });
  server.on("upgrade", (request, socket, head) => {
    const match = /^\/v1\/sessions\/([^/]+)\/signal$/.exec(new URL(request.url ?? "/", "http://floor").pathname);
    const served = match ? sessions.get(match[1]!) : undefined;
    if (!served) return socket.destroy();
    sockets.handleUpgrade(request, socket, head, (ws) => signal(ws, served));
  });
  function signal(ws: WebSocket, served: Served): void {
    const send = (frame: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(frame));
    send({ type: "welcome", protocol: PROTOCOL_VERSION, session_id: served.id, next_command_seq: 1, message_seq: 0 });
    send({ type: "status", state: "WAITING", capabilities });
    send({ type: "ice_servers", ice_servers: [] });
    served.onPeerState = (state) => {
      if (state === "connected") send({ type: "status", state: "ACTIVE", capabilities });
    };
    ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; generation?: number; sdp?: string; candidate?: IceCandidate | null; t?: number };
      if (frame.type === "ping") send({ type: "pong", ...(frame.t !== undefined && { t: frame.t }) });
      else if (frame.type === "offer") {
        const generation = frame.generation!;
        void negotiate(
          served,
          frame.sdp!,
          undefined,
          true,
          (sdp) => send({ type: "answer", generation, sdp }),
          (candidate) => send({ type: "ice", generation, candidate }),
        );
      } else if (frame.type === "ice") void served.peer?.addRemoteCandidate(frame.candidate ?? null);
      else if (frame.type === "close") {
        send({ type: "status", state: "CLOSED", reason: "client_closed" });
        end(served);
        ws.close(1000);
      }
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const served of sessions.values()) end(served);
      for (const ws of sockets.clients) ws.terminate();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await encoders.stop();
    },
  };
}

/**
 * The barest client: `window.floor.connect({ trickle, dataChannel })` makes one RTCPeerConnection receiving video
 * (and the official client's `data` channel), offers it — at once with candidates trickled after it, or once ICE
 * gathering is complete — and plays the answerer's video. ms from the call: answer, ICE connected, DTLS
 * connected, channel open, first presented frame.
 */
const RAW_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>WebRTC floor</title></head>
<body><video id="video" muted autoplay playsinline></video>
<script>
const video = document.getElementById("video");
const post = (path, body) => fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
window.floor = {
  async connect({ trickle, dataChannel }) {
    const t0 = performance.now();
    const at = () => Math.round((performance.now() - t0) * 10) / 10;
    const times = {};
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    window.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    if (dataChannel) pc.createDataChannel("data").onopen = () => (times.channelOpen = at());
    pc.ontrack = (event) => { video.srcObject = new MediaStream([event.track]); video.play().catch(() => {}); };
    pc.oniceconnectionstatechange = () => { if (pc.iceConnectionState === "connected" && times.iceConnected === undefined) times.iceConnected = at(); };
    pc.onconnectionstatechange = () => { if (pc.connectionState === "connected") times.connected = at(); };
    const firstFrame = new Promise((resolve) => video.requestVideoFrameCallback(() => resolve((times.firstFrame = at()))));
    let id;
    const early = [];
    pc.onicecandidate = (event) => {
      if (!trickle) return;
      const candidate = event.candidate && event.candidate.candidate ? { candidate: event.candidate.candidate, sdp_mid: event.candidate.sdpMid, sdp_mline_index: event.candidate.sdpMLineIndex } : null;
      if (id) post("/raw/candidate", { id, candidate }); else early.push(candidate);
    };
    const offer = await pc.createOffer();
    const local = pc.setLocalDescription(offer);
    if (!trickle) {
      await local;
      if (pc.iceGatheringState !== "complete") await new Promise((resolve) => pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve()));
      times.gathered = at();
    }
    const response = await (await post("/raw/offer", { sdp: trickle ? offer.sdp : pc.localDescription.sdp })).json();
    id = response.id;
    times.answer = at();
    await local;
    await pc.setRemoteDescription({ type: "answer", sdp: response.sdp });
    for (const candidate of early) post("/raw/candidate", { id, candidate });
    await firstFrame;
    if (dataChannel && times.channelOpen === undefined) await new Promise((resolve) => { const wait = setInterval(() => { if (times.channelOpen !== undefined) { clearInterval(wait); resolve(); } }, 5); });
    await post("/raw/end", { id });
    pc.close();
    return times;
  },
};
</script></body></html>
`;
