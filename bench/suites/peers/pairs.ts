/**
 * One session's two ends over each relay measured side by side (the raw floor, a PeerJS server, the gateway), each
 * as a `Pair` whose calls send one message and resolve when its answer is back. The same texts on every path.
 */
import { closeSession, type LiveSession } from "../../lib/fleet.ts";
import { ANSWER_SDP, CLIENT_CANDIDATE, OFFER_SDP, RUNTIME_CANDIDATE } from "../../lib/signaling-samples.ts";
import { NodePeer, withTimeout, type Frame } from "../../../tools/peers.ts";

/** One round trip that takes longer than this counts as failed (bounded run). */
const ROUND_TRIP_TIMEOUT_MS = 30_000;

/** One session's two ends over some relay: each call sends one message and resolves when the answer is back. */
export interface Pair {
  sdp(): Promise<void>;
  ice(): Promise<void>;
  close(): void;
}

/** Resolves the pending round trip of a pair when its answer arrives; rejects it after a timeout. */
class Waiter {
  #pending: { resolve: () => void; timer: NodeJS.Timeout } | undefined;

  wait(send: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending = undefined;
        reject(new Error(`no answer within ${ROUND_TRIP_TIMEOUT_MS} ms`));
      }, ROUND_TRIP_TIMEOUT_MS);
      this.#pending = { resolve, timer };
      send();
    });
  }

  done(): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = undefined;
    clearTimeout(pending.timer);
    pending.resolve();
  }
}

// ── Floor ───────────────────────────────────────────────────────────────────────────────────────────────────────

/** The gateway's frames, relayed untouched by the floor: the very bytes the gateway's sockets carry. */
const offerFrame = (generation: number) => JSON.stringify({ type: "offer", generation, sdp: OFFER_SDP });
const answerFrame = (generation: number) => JSON.stringify({ type: "answer", generation, sdp: ANSWER_SDP });
const clientIceFrame = (generation: number) => JSON.stringify({ type: "ice", generation, candidate: CLIENT_CANDIDATE });
const runtimeIceFrame = (generation: number) => JSON.stringify({ type: "ice", generation, candidate: RUNTIME_CANDIDATE });

export async function floorPair(port: number, id: string): Promise<Pair> {
  const [client, peer] = await Promise.all([
    NodePeer.open(`ws://127.0.0.1:${port}/client/${id}`),
    NodePeer.open(`ws://127.0.0.1:${port}/peer/${id}`),
  ]);
  peer.onFrame = (frame) => {
    const generation = frame.generation as number;
    peer.send(frame.type === "offer" ? answerFrame(generation) : runtimeIceFrame(generation));
    return true;
  };
  const waiter = new Waiter();
  client.onFrame = () => {
    waiter.done();
    return true;
  };
  let generation = 1;
  return {
    sdp: () => waiter.wait(() => client.send(offerFrame(++generation))),
    ice: () => waiter.wait(() => client.send(clientIceFrame(generation))),
    close: () => {
      client.ws.terminate();
      peer.ws.terminate();
    },
  };
}

// ── PeerJS ──────────────────────────────────────────────────────────────────────────────────────────────────────

/** A PeerJS client's socket: connected once the server says OPEN; heartbeats as the PeerJS client sends them. */
async function peerjsClient(port: number, id: string): Promise<NodePeer> {
  const peer = await NodePeer.open(`ws://127.0.0.1:${port}/peerjs?key=peerjs&id=${id}&token=${id}t`);
  await peer.next("OPEN", 30_000);
  const heartbeat = setInterval(() => peer.send({ type: "HEARTBEAT" }), 5000);
  peer.ws.on("close", () => clearInterval(heartbeat));
  return peer;
}

/** Two PeerJS clients, as PeerJS's own client shapes its messages: OFFER/ANSWER with an SDP, CANDIDATE with one. */
export async function peerjsPair(port: number, id: string): Promise<Pair> {
  const [caller, callee] = await Promise.all([peerjsClient(port, `${id}a`), peerjsClient(port, `${id}b`)]);
  const connectionId = `mc_${id}`;
  callee.onFrame = (frame: Frame) => {
    if (frame.type === "OFFER") {
      callee.send({ type: "ANSWER", dst: `${id}a`, payload: { sdp: { type: "answer", sdp: ANSWER_SDP }, type: "media", connectionId } });
    } else if (frame.type === "CANDIDATE") {
      const { candidate, sdp_mid, sdp_mline_index } = RUNTIME_CANDIDATE;
      callee.send({
        type: "CANDIDATE",
        dst: `${id}a`,
        payload: { candidate: { candidate, sdpMid: sdp_mid, sdpMLineIndex: sdp_mline_index }, type: "media", connectionId },
      });
    }
    return true;
  };
  const waiter = new Waiter();
  caller.onFrame = (frame) => {
    if (frame.type === "ANSWER" || frame.type === "CANDIDATE") waiter.done();
    return true;
  };
  const { candidate, sdp_mid, sdp_mline_index } = CLIENT_CANDIDATE;
  const offer = JSON.stringify({
    type: "OFFER",
    dst: `${id}b`,
    payload: { sdp: { type: "offer", sdp: OFFER_SDP }, type: "media", connectionId, metadata: null },
  });
  const ice = JSON.stringify({
    type: "CANDIDATE",
    dst: `${id}b`,
    payload: { candidate: { candidate, sdpMid: sdp_mid, sdpMLineIndex: sdp_mline_index }, type: "media", connectionId },
  });
  return {
    sdp: () => waiter.wait(() => caller.send(offer)),
    ice: () => waiter.wait(() => caller.send(ice)),
    close: () => {
      caller.ws.terminate();
      callee.ws.terminate();
    },
  };
}

// ── The gateway ─────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * A live session as a pair: the client sends a new offer generation (the runtime answers it) or a candidate of the
 * current one (the runtime answers with one of its own), through the session's object both ways.
 */
export function gatewayPair(session: LiveSession): Pair {
  const { client, runtimePeer } = session;
  runtimePeer.onFrame = (frame) => {
    const generation = frame.generation as number;
    if (frame.type === "offer") runtimePeer.send(answerFrame(generation));
    else if (frame.type === "ice") runtimePeer.send(runtimeIceFrame(generation));
    return true;
  };
  const waiter = new Waiter();
  client.onFrame = (frame) => {
    if (frame.type === "answer" || frame.type === "ice") waiter.done();
    return true; // status, ice_servers…: not part of the measurement
  };
  return {
    sdp: () => waiter.wait(() => client.send(offerFrame(++session.generation))),
    ice: () => waiter.wait(() => client.send(clientIceFrame(session.generation))),
    close: () => closeSession(session),
  };
}

/** Opens `count` pairs, 100 at a time (a burst of thousands of connects would overflow the listen backlog). */
export async function openPairs(count: number, open: (index: number) => Promise<Pair>): Promise<Pair[]> {
  const pairs: Pair[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, j) => open(i + j)));
    pairs.push(...(await withTimeout(batch, 60_000, `opening pairs ${i}–${i + 99}`)));
  }
  return pairs;
}
