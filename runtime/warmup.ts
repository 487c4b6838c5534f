/**
 * The first peer connection in a process is 300–600 ms slower than the next ones (DTLS certificate, JIT; see
 * docs/media-recipe.md). Connecting two local peers once at start moves that cost off the first client's path.
 * werift keeps one DTLS certificate per process, so this also makes the one every session's peer connection uses.
 * The answering side is tuned as the agent's are (`tuneTransports`), so the warm-up runs their code paths too.
 */
import { errorText, type Log } from "./log.ts";
import { newPeerConnection, tuneTransports, type WebRtcOptions } from "./peer.ts";

export async function warmUpWebRtc(webrtc: WebRtcOptions, log: Log, timeoutMs = 10_000): Promise<void> {
  const started = performance.now();
  const local = { ...webrtc, iceServers: [], additionalHostAddresses: ["127.0.0.1"] };
  // As an offerer werift needs max-bundle, or close() leaks its sockets.
  const offerer = newPeerConnection(local, "max-bundle");
  const answerer = newPeerConnection(local);
  try {
    const channel = offerer.createDataChannel("warm-up");
    const opened = new Promise<void>((resolve) => channel.stateChanged.subscribe((state) => state === "open" && resolve()));
    await offerer.setLocalDescription(await offerer.createOffer());
    await gatheringComplete(offerer);
    await answerer.setRemoteDescription(offerer.localDescription!);
    tuneTransports(answerer, local);
    await answerer.setLocalDescription(await answerer.createAnswer());
    await gatheringComplete(answerer);
    await offerer.setRemoteDescription(answerer.localDescription!);
    await withTimeout(opened, timeoutMs);
    log("debug", `WebRTC warmed up in ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    log("warn", `WebRTC warm-up failed (the first session connects a little slower): ${errorText(error)}`);
  } finally {
    await Promise.allSettled([offerer.close(), answerer.close()]);
  }
}

function gatheringComplete(pc: ReturnType<typeof newPeerConnection>): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => pc.iceGatheringStateChange.subscribe((state) => state === "complete" && resolve()));
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no connection within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
