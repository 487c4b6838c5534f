/**
 * A test page that runs the native SDK's browser bundle (sdk/build.ts) in Chromium, with a small harness on
 * `window.harness`: it creates one client, records its events, tracks command handles, counts decoded video frames,
 * and can inject frames into the client's live signaling socket (to test how it takes garbage from a server).
 *
 *   const site = await servePage(await sdkPage());
 *   const page = await browser.newPage();
 *   await page.goto(site.url);
 *   const sdk = sdkHarness(page);
 *   await sdk.create({ apiUrl: gateway.url, modelName: "demo" });
 *   await sdk.connect(jwt);
 *   await expect.poll(() => sdk.state().then((s) => s.status)).toBe("ready");
 */
import type { Page } from "playwright-core";
import { buildSdkBundle } from "../sdk/build.ts";
import type { PageFile } from "./browser.ts";

export interface RecordedError {
  code: string;
  /** ms since connect() when it was reported. */
  ms: number;
  message: string;
  recoverable: boolean;
  retryAfter?: number;
  component: string;
  reason?: string;
}

export interface RecordedCommand {
  type: string;
  seq?: number;
  /** Every state the handle went through, in order (starting with its initial one). */
  states: string[];
  error?: string;
  done?: string;
}

/** What `harness.state()` returns. */
export interface SdkState {
  status: string;
  /** Every status reported, in order, and when (ms since connect() was called). */
  statuses: string[];
  statusTimes: [status: string, ms: number][];
  sessionId: string | null;
  sessionIds: (string | null)[];
  /** Every sessionInfo event. */
  infos: { state: string; reason?: string; queuePosition?: number; graceDeadline?: number }[];
  errors: RecordedError[];
  messages: { data: unknown; seq: number }[];
  tracks: string[];
  commands: RecordedCommand[];
  stats: {
    rttMs?: number;
    candidateType?: string;
    relayProtocol?: string;
    fps?: number;
    bitrateKbps?: number;
    framesDecoded?: number;
    generation: number;
  }[];
  /** Video frames presented (requestVideoFrameCallback), the last media time, ms from connect() to the first. */
  frames: number;
  mediaTime: number;
  firstFrameMs: number | null;
  /** ms from connect() to the first frame presented after the last `online` event (null: none yet). */
  onlineFrameMs: number | null;
  /** How often the token function was called (connect with `tokenAsFunction`). */
  tokenCalls: number;
  /** Signaling sockets the client opened. */
  sockets: number;
  connectResult: string | null;
  /** ms from connect() to its promise settling. */
  connectMs: number | null;
  /**
   * Signaling frames in (`<`) and out (`>`) with ms since connect(), for timelines (pings left out); `<` "(open)"
   * and "(close)" when a socket opened or closed, and `!` for the browser's `online` / `offline` events.
   */
  wire: [direction: "<" | ">" | "!", type: string, ms: number][];
  reconnectResult: string | null;
  /** Every uploadFile() call, in order: its FileRef (or error code) and the progress it reported. */
  uploads: RecordedUpload[];
}

export interface RecordedUpload {
  ref?: { uploadId: string; name: string; mimeType: string; size: number };
  error?: string;
  progress: [loaded: number, total: number][];
}

export interface CreateOptions {
  apiUrl: string;
  modelName: string;
  /** ClientOptions passed as they are (JSON-serializable ones only: graceMs, keepAliveMs, statsIntervalMs). */
  options?: Record<string, unknown>;
  /** When given, `reconnectPolicy: jitteredBackoff(backoff)`. */
  backoff?: { initialMs?: number; maxMs?: number; jitter?: number; marginMs?: number };
}

/** The files for servePage(): `/` (harness) and `/reactor-sdk.js` (the bundle). */
export async function sdkPage(): Promise<Record<string, PageFile>> {
  return {
    "/": HARNESS_HTML,
    "/reactor-sdk.js": { body: await buildSdkBundle(), type: "text/javascript; charset=utf-8" },
  };
}

interface Harness {
  create(options: CreateOptions): void;
  connect(token: string, asFunction: boolean): Promise<void>;
  send(type: string, data: unknown, whileWaiting?: string): number;
  disconnect(recoverable: boolean): Promise<void>;
  reconnect(): Promise<void>;
  dropConnection(): void;
  networkChanged(): void;
  restartIce(): void;
  inject(raw: string | "binary"): void;
  loseSendsAfterNextMessage(): void;
  closeSocket(): void;
  upload(url: string, name: string, type: string): Promise<number>;
  sendFile(type: string, param: string, upload: number): number;
  state(): SdkState;
}
type HarnessWindow = { harness: Harness };

/** Typed calls into a page's harness. */
export function sdkHarness(page: Page) {
  return {
    create: (options: CreateOptions) => page.evaluate((o) => (window as unknown as HarnessWindow).harness.create(o), options),
    /** Resolves once connect() settled (`wait`, default) or at once; the outcome is in state().connectResult. */
    connect: (token: string, options: { tokenAsFunction?: boolean; wait?: boolean } = {}) =>
      page.evaluate(
        async ([jwt, asFunction, wait]) => {
          const connecting = (window as unknown as HarnessWindow).harness.connect(jwt, asFunction);
          if (wait) await connecting;
        },
        [token, options.tokenAsFunction ?? false, options.wait ?? true] as const,
      ),
    /** Sends a command; returns its index in state().commands. */
    send: (type: string, data?: unknown, whileWaiting?: string) =>
      page.evaluate(([t, d, w]) => (window as unknown as HarnessWindow).harness.send(t, d, w), [type, data, whileWaiting] as const),
    disconnect: (recoverable = false) => page.evaluate((r) => (window as unknown as HarnessWindow).harness.disconnect(r), recoverable),
    reconnect: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.reconnect()),
    dropConnection: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.dropConnection()),
    /** Dispatches the browser's `online` event, as a network change does. */
    networkChanged: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.networkChanged()),
    restartIce: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.restartIce()),
    /** Delivers `raw` as if the gateway had sent it on the client's open socket ("binary": an ArrayBuffer). */
    inject: (raw: string) => page.evaluate((r) => (window as unknown as HarnessWindow).harness.inject(r), raw),
    /**
     * From the next model message on, whatever the client sends on its current socket is silently lost, as with a
     * connection that is dying but not yet closed (its acknowledgement of that message is lost too).
     */
    loseSendsAfterNextMessage: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.loseSendsAfterNextMessage()),
    /** Closes the client's signaling socket under it (the peer connection stays up): a signaling-only drop. */
    closeSocket: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.closeSocket()),
    /** uploadFile() of the page's file at `url` as a File `name` of `type`; returns its index in state().uploads once settled. */
    upload: (url: string, name: string, type: string) =>
      page.evaluate(([u, n, t]) => (window as unknown as HarnessWindow).harness.upload(u, n, t), [url, name, type] as const),
    /** Sends a command whose parameter `param` is the FileRef of upload `upload`; returns its index in state().commands. */
    sendFile: (type: string, param: string, upload: number) =>
      page.evaluate(([t, p, u]) => (window as unknown as HarnessWindow).harness.sendFile(t, p, u), [type, param, upload] as const),
    state: () => page.evaluate(() => (window as unknown as HarnessWindow).harness.state()),
  };
}

export type SdkHarness = ReturnType<typeof sdkHarness>;

const HARNESS_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>native SDK harness</title></head>
<body>
<video id="video" muted autoplay playsinline></video>
<script type="module">
import { Client, jitteredBackoff } from "/reactor-sdk.js";
const video = document.getElementById("video");
let client = null;
let token = null;
let t0 = 0;
let loseAfterMessage = false;
let awaitingOnlineFrame = false;
const sockets = [];
const s = { status: "disconnected", statuses: [], statusTimes: [], sessionId: null, sessionIds: [], infos: [], errors: [], messages: [],
  tracks: [], commands: [], stats: [], frames: 0, mediaTime: 0, firstFrameMs: null, onlineFrameMs: null, tokenCalls: 0, sockets: 0, connectResult: null, connectMs: null, wire: [],
  reconnectResult: null, uploads: [] };
const fileRefs = [];
const onFrame = (now, meta) => {
  s.frames++;
  s.mediaTime = meta.mediaTime;
  if (s.firstFrameMs === null) s.firstFrameMs = now - t0;
  if (awaitingOnlineFrame) { awaitingOnlineFrame = false; s.onlineFrameMs = now - t0; }
  video.requestVideoFrameCallback(onFrame);
};
video.requestVideoFrameCallback(onFrame);
for (const type of ["online", "offline"]) window.addEventListener(type, () => s.wire.push(["!", type, performance.now() - t0]));
window.addEventListener("online", () => { awaitingOnlineFrame = true; s.onlineFrameMs = null; });

/** The browser's WebSocket, remembered so the harness can inject frames into the client's current socket. */
class TapWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    this.lossy = false;
    sockets.push(this);
    s.sockets++;
    this.addEventListener("open", () => s.wire.push(["<", "(open)", performance.now() - t0]));
    this.addEventListener("close", () => s.wire.push(["<", "(close)", performance.now() - t0]));
    this.addEventListener("message", (event) => log("<", event.data));
  }
  send(data) {
    log(">", data);
    if (!this.lossy) super.send(data);
  }
}

function log(direction, data) {
  let type = "?";
  try { type = JSON.parse(data).type; } catch {}
  if (type !== "ping" && type !== "pong") s.wire.push([direction, type, performance.now() - t0]);
}

const outcome = (promise) => promise.then(() => "ok", (e) => "error:" + (e && e.code ? e.code : String(e)));

window.harness = {
  create({ apiUrl, modelName, options, backoff }) {
    client = new Client({ apiUrl, modelName, WebSocket: TapWebSocket, ...options, ...(backoff && { reconnectPolicy: jitteredBackoff(backoff) }) });
    window.client = client;
    client.on("statusChanged", (status) => {
      s.status = status;
      s.statuses.push(status);
      s.statusTimes.push([status, performance.now() - t0]);
    });
    client.on("sessionIdChanged", (id) => { s.sessionId = id ?? null; s.sessionIds.push(id ?? null); });
    client.on("sessionInfo", (info) => s.infos.push(info));
    client.on("error", (e) => s.errors.push({ code: e.code, ms: performance.now() - t0, message: e.message, recoverable: e.recoverable,
      retryAfter: e.retryAfter, component: e.component, reason: e.reason }));
    client.on("message", (data, meta) => {
      s.messages.push({ data, seq: meta.seq });
      if (loseAfterMessage) { loseAfterMessage = false; sockets.at(-1).lossy = true; }
    });
    client.on("statsUpdate", (stats) => s.stats.push(stats));
    client.on("trackReceived", (name, track, stream) => {
      s.tracks.push(name + ":" + track.kind);
      if (track.kind === "video") { video.srcObject = stream; video.play().catch(() => {}); }
    });
  },
  async connect(jwt, asFunction) {
    token = jwt;
    const source = asFunction ? async () => { s.tokenCalls++; return token; } : jwt;
    t0 = performance.now();
    s.connectResult = await outcome(client.connect(source));
    s.connectMs = performance.now() - t0;
  },
  async upload(url, name, type) {
    const file = new File([await (await fetch(url)).blob()], name, { type });
    const record = { progress: [] };
    s.uploads.push(record);
    try {
      const ref = await client.uploadFile(file, { onProgress: ({ loaded, total }) => record.progress.push([loaded, total]) });
      fileRefs[s.uploads.length - 1] = ref;
      record.ref = { uploadId: ref.uploadId, name: ref.name, mimeType: ref.mimeType, size: ref.size };
    } catch (e) {
      record.error = e && e.code ? e.code : String(e);
    }
    return s.uploads.indexOf(record);
  },
  sendFile(type, param, upload) { return this.send(type, { [param]: fileRefs[upload] }); },
  send(type, data, whileWaiting) {
    const handle = client.sendCommand(type, data, whileWaiting ? { whileWaiting } : {});
    const record = { type, seq: handle.seq, states: [handle.state], error: handle.error };
    s.commands.push(record);
    handle.on("stateChanged", (state) => { record.states.push(state); record.seq = handle.seq; record.error = handle.error; });
    handle.done.then((state) => { record.done = state; record.seq = handle.seq; record.error = handle.error; });
    return s.commands.length - 1;
  },
  async disconnect(recoverable) { await client.disconnect(recoverable); },
  async reconnect() { s.reconnectResult = await outcome(client.reconnect()); },
  dropConnection() { client.dropConnection(); },
  networkChanged() { window.dispatchEvent(new Event("online")); },
  restartIce() { client.restartIce(); },
  inject(raw) {
    const socket = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).at(-1);
    if (!socket) throw new Error("no open socket to inject into");
    socket.dispatchEvent(new MessageEvent("message", { data: raw === "binary" ? new ArrayBuffer(8) : raw }));
  },
  loseSendsAfterNextMessage() { loseAfterMessage = true; },
  closeSocket() { sockets.at(-1).close(4999, "closed by the test"); }, // a code with no meaning (4001: token expired)
  state() { return JSON.parse(JSON.stringify({ ...s, status: client ? client.getStatus() : s.status })); },
};
</script>
</body></html>
`;
