/**
 * A test page that runs the official client (`@reactor-team/js-sdk`, the version in package.json) unmodified in
 * Chromium (bundled by `officialClientBundle()`) and a small harness on
 * `window.harness` connects, counts decoded video frames and records messages.
 *
 *   const site = await servePage(await reactorClientPage());
 *   const page = await browser.newPage();
 *   await page.goto(site.url);
 *   await page.evaluate(([url, jwt]) => window.harness.connect({ apiUrl: url, modelName: "m", jwt }), [gatewayUrl, jwt]);
 *   await page.waitForFunction(() => window.harness.state().frames > 0);
 */
import { officialClientBundle } from "../scripts/lib/bundles.ts";
import type { PageFile } from "./browser.ts";

/** What `window.harness.state()` returns. */
export interface HarnessState {
  status: string;
  /** Every status the client reported, with ms since connect() was called. */
  statuses: [string, number][];
  errors: { code: string; message: string; recoverable: boolean; component: string }[];
  /** Application-scope messages (`message` event) and runtime-scope ones (`runtimeMessage`). */
  messages: unknown[];
  runtimeMessages: unknown[];
  tracks: string[];
  /** Video frames presented (requestVideoFrameCallback), ms from connect() to the first, and the last media time. */
  frames: number;
  firstFrameMs: number | null;
  mediaTime: number;
  connectError: string | null;
}

/** `window.harness` in the page (inside `page.evaluate`: `(window as unknown as HarnessWindow).harness`). */
export interface Harness {
  /** Resolves when connect() settles (it does not wait for "ready"); errors land in state().connectError. */
  connect(options: { apiUrl: string; modelName: string; jwt: string; options?: object }): Promise<void>;
  sendCommand(command: string, data: unknown, scope?: "application" | "runtime"): void;
  /** `reactor.uploadFile()` of the page's file at `url`, as a File `name` of `type`: the FileRef's index, or the error. */
  uploadFile(url: string, name: string, type: string): Promise<{ index: number; ref: FileRefFields } | { error: string }>;
  /** A FileRef of the client's own class with made-up fields (another session's id, a wrong size…): its index. */
  forgeFileRef(fields: FileRefFields): number;
  /** `sendCommand(command, { [param]: <FileRef index> })`: the client moves it into the command's `uploads`. */
  sendWithFile(command: string, param: string, index: number): void;
  disconnect(recoverable?: boolean): Promise<void>;
  reconnect(options?: object): Promise<void>;
  state(): HarnessState;
  sessionId(): string | undefined;
  inboundVideo(): Promise<{ framesDecoded: number; keyFramesDecoded: number; frameWidth: number; frameHeight: number } | null>;
  /** Bright pixels (luma > 128) of a region of the current frame, as 0s and 1s; null before the first frame. */
  brightMask(region: { x: number; y: number; width: number; height: number }): string | null;
}

export type HarnessWindow = { harness: Harness };

export interface FileRefFields {
  uploadId: string;
  name: string;
  mimeType: string;
  size: number;
}

/** The files for servePage(): `/` (harness) and `/reactor.js` (the bundled client). */
export async function reactorClientPage(): Promise<Record<string, PageFile>> {
  return {
    "/": HARNESS_HTML,
    "/reactor.js": { body: await officialClientBundle(), type: "text/javascript; charset=utf-8" },
  };
}

const HARNESS_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>reactor client harness</title></head>
<body>
<video id="video" muted autoplay playsinline></video>
<script src="/reactor.js"></script>
<script>
(() => {
  const video = document.getElementById("video");
  let reactor = null;
  const fileRefs = [];
  const fields = (ref) => ({ uploadId: ref.uploadId, name: ref.name, mimeType: ref.mimeType, size: ref.size });
  let t0 = 0;
  const s = { status: "disconnected", statuses: [], errors: [], messages: [], runtimeMessages: [], tracks: [],
    frames: 0, firstFrameMs: null, mediaTime: 0, connectError: null };
  const onFrame = (now, meta) => {
    s.frames++;
    if (s.firstFrameMs === null) s.firstFrameMs = Math.round(now - t0);
    s.mediaTime = meta.mediaTime;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  window.harness = {
    /** Resolves when connect() settles (it does not wait for "ready"); errors land in state().connectError. */
    async connect({ apiUrl, modelName, jwt, options }) {
      reactor = new Reactor({ modelName, apiUrl });
      window.reactor = reactor;
      reactor.on("statusChanged", (status) => { s.status = status; s.statuses.push([status, Math.round(performance.now() - t0)]); });
      reactor.on("error", (e) => s.errors.push({ code: e.code, message: e.message, recoverable: e.recoverable, component: e.component }));
      reactor.on("message", (m) => s.messages.push(m));
      reactor.on("runtimeMessage", (m) => s.runtimeMessages.push(m));
      reactor.on("trackReceived", (name, track, stream) => {
        s.tracks.push(name + ":" + track.kind);
        if (track.kind === "video") { video.srcObject = stream; video.play().catch(() => {}); }
      });
      t0 = performance.now();
      try { await reactor.connect(jwt, options); } catch (e) { s.connectError = String(e); }
    },
    sendCommand(command, data, scope) { reactor.sendCommand(command, data, scope); },
    async uploadFile(url, name, type) {
      const file = new File([await (await fetch(url)).blob()], name, { type });
      try {
        const ref = await reactor.uploadFile(file);
        fileRefs.push(ref);
        return { index: fileRefs.length - 1, ref: fields(ref) };
      } catch (e) { return { error: String(e) }; }
    },
    forgeFileRef({ uploadId, name, mimeType, size }) {
      const FileRef = fileRefs[0].constructor; // the client exports no global; its own class, from a real upload
      fileRefs.push(new FileRef(uploadId, name, mimeType, size));
      return fileRefs.length - 1;
    },
    sendWithFile(command, param, index) { reactor.sendCommand(command, { [param]: fileRefs[index] }); },
    async disconnect(recoverable) { await reactor.disconnect(recoverable); },
    async reconnect(options) { await reactor.reconnect(options); },
    state() { return { ...s, status: reactor ? reactor.getStatus() : s.status }; },
    sessionId() { return reactor ? reactor.getSessionId() : undefined; },
    /**
     * Which pixels of a region of the current video frame are bright (luma > 128), as a string of 0s and 1s:
     * compares what is drawn (the demo model's prompt text) between two moments.
     */
    brightMask({ x, y, width, height }) {
      if (!video.videoWidth) return null;
      const canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(video, 0, 0);
      const { data } = context.getImageData(x, y, width, height);
      let mask = "";
      for (let i = 0; i < data.length; i += 4) mask += 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2] > 128 ? "1" : "0";
      return mask;
    },
    /** inbound-rtp video stats of the client's peer connection (reaches into the client: diagnostics only). */
    async inboundVideo() {
      const pc = reactor && reactor.transportClient && reactor.transportClient.peerConnection;
      if (!pc) return null;
      for (const r of (await pc.getStats()).values()) {
        if (r.type === "inbound-rtp" && r.kind === "video") return { framesDecoded: r.framesDecoded,
          keyFramesDecoded: r.keyFramesDecoded, packetsLost: r.packetsLost, pliCount: r.pliCount, nackCount: r.nackCount,
          frameWidth: r.frameWidth, frameHeight: r.frameHeight, framesPerSecond: r.framesPerSecond };
      }
      return null;
    },
  };
})();
</script>
</body></html>
`;
