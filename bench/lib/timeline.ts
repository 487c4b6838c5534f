/**
 * Where a connect's time goes: one merged timeline of what the page (Chromium), the gateway and the runtime agent
 * each saw, all in wall-clock ms (the three run on one machine, so their clocks agree).
 *
 *   - the page: `PAGE_PROBE` (added with `page.addInitScript` before the page's own scripts) wraps
 *     RTCPeerConnection (offer/answer calls, ICE gathering and candidates, ICE, DTLS and connection states, the
 *     data channel), fetch and WebSocket (each call and frame type), and notes every presented video frame;
 *   - the gateway: the request lines `wrangler dev` prints when a response is done (method, path, status, ms);
 *   - the agent: its debug log (offer received, answer timings, ICE/DTLS states, encoder start), via `agentLog`.
 */
import type { Page } from "playwright-core";
import type { Log } from "../../runtime/log.ts";

export interface TimelineEvent {
  /** Wall-clock ms (Date.now() basis). */
  at: number;
  source: "page" | "gateway" | "agent";
  what: string;
}

/** Runs in the page before its scripts: `window.__timeline` collects [epoch ms, what]. */
export const PAGE_PROBE = String.raw`(() => {
  const events = (window.__timeline = []);
  const now = () => performance.timeOrigin + performance.now();
  const mark = (what) => events.push([now(), what]);
  const short = (url) => { try { const u = new URL(url, location.href); return u.pathname.replace(/\/sessions\/[^/]+/, "/sessions/:id"); } catch { return String(url); } };
  const NativePC = window.RTCPeerConnection;
  let pcs = 0;
  class ProbedPeerConnection extends NativePC {
    constructor(...args) {
      super(...args);
      const id = ++pcs;
      const m = (what) => mark("pc" + id + " " + what);
      this.__mark = m;
      this.__hooked = new Set();
      m("created");
      this.addEventListener("icegatheringstatechange", () => m("gathering " + this.iceGatheringState));
      this.addEventListener("icecandidate", (e) => m(e.candidate && e.candidate.candidate ? "local candidate " + e.candidate.type + " " + e.candidate.protocol : "end of local candidates"));
      this.addEventListener("iceconnectionstatechange", () => m("ICE " + this.iceConnectionState));
      this.addEventListener("connectionstatechange", () => m("connection " + this.connectionState));
      this.addEventListener("track", (e) => m("track " + e.track.kind));
    }
    __hook() {
      const transports = [...this.getTransceivers().map((t) => t.receiver.transport), this.sctp && this.sctp.transport];
      for (const dtls of transports) {
        if (!dtls || this.__hooked.has(dtls)) continue;
        this.__hooked.add(dtls);
        dtls.addEventListener("statechange", () => this.__mark("DTLS " + dtls.state));
        dtls.iceTransport.addEventListener("selectedcandidatepairchange", () => {
          const pair = dtls.iceTransport.getSelectedCandidatePair();
          this.__mark("selected pair " + (pair ? pair.local.type + "→" + pair.remote.type : "none"));
        });
      }
    }
    async createOffer(...args) { this.__mark("createOffer"); const offer = await super.createOffer(...args); this.__mark("offer created"); return offer; }
    async setLocalDescription(...args) { this.__mark("setLocalDescription"); await super.setLocalDescription(...args); this.__mark("local description set"); this.__hook(); }
    async setRemoteDescription(...args) { this.__mark("setRemoteDescription " + (args[0] && args[0].type)); await super.setRemoteDescription(...args); this.__mark("remote description set"); this.__hook(); }
    async addIceCandidate(...args) { const c = args[0]; this.__mark("addIceCandidate " + (c && c.candidate ? c.candidate.split(" ").slice(4, 8).join(" ") : "end")); return super.addIceCandidate(...args); }
    createDataChannel(...args) {
      const channel = super.createDataChannel(...args);
      channel.addEventListener("open", () => this.__mark("channel " + channel.label + " open"));
      return channel;
    }
  }
  window.RTCPeerConnection = ProbedPeerConnection;

  const nativeFetch = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = (init && init.method) || (input instanceof Request ? input.method : "GET");
    const what = method + " " + short(url);
    mark("→ " + what);
    try {
      const response = await nativeFetch(input, init);
      mark("← " + response.status + " " + what);
      return response;
    } catch (error) {
      mark("✖ " + what + " " + error);
      throw error;
    }
  };
  // XMLHttpRequest is not wrapped: neither client uses it.

  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class ProbedWebSocket extends NativeWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      mark("ws open " + short(url));
      this.addEventListener("open", () => mark("ws opened"));
      this.addEventListener("message", (event) => {
        let type = "?";
        try { type = JSON.parse(event.data).type; } catch {}
        if (type !== "pong") mark("ws ← " + type);
      });
    }
    send(data) {
      let type = "?";
      try { type = JSON.parse(data).type; } catch {}
      if (type !== "ping") mark("ws → " + type);
      return super.send(data);
    }
  };

  const watch = (video) => {
    let frames = 0;
    const onFrame = (now) => {
      if (frames++ === 0) mark("first video frame presented");
      if (frames < 3) video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  };
  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("video").forEach(watch));
})();`;

export async function probePage(page: Page): Promise<void> {
  await page.addInitScript({ content: PAGE_PROBE });
}

export async function pageEvents(page: Page): Promise<TimelineEvent[]> {
  const raw = await page.evaluate(() => (window as unknown as { __timeline: [number, string][] }).__timeline);
  return raw.map(([at, what]) => ({ at, source: "page", what }));
}

/** Collects the agent's log lines (debug included) with their time. */
export function agentLog(): { log: Log; events: TimelineEvent[]; clear(): void } {
  const events: TimelineEvent[] = [];
  return {
    log: (level, message) => events.push({ at: Date.now(), source: "agent", what: level === "debug" ? message : `${level}: ${message}` }),
    events,
    clear: () => void events.splice(0),
  };
}

/** Collects the gateway's request lines (`[wrangler:info] GET /x 200 OK (3ms)`) with the time they were printed. */
export function gatewayLog(): { onLine: (line: string) => void; events: TimelineEvent[]; clear(): void } {
  const events: TimelineEvent[] = [];
  return {
    onLine: (line) => {
      const match = /\b(GET|POST|PUT|DELETE|OPTIONS|HEAD)\s+(\S+)\s+(\d{3})[^(]*\((\d+)ms\)/.exec(line);
      if (!match) return;
      const path = match[2]!.replace(/\/sessions\/[^/?]+/, "/sessions/:id").replace(/\?.*$/, "");
      events.push({ at: Date.now(), source: "gateway", what: `${match[1]} ${path} ${match[3]} (${match[4]} ms in the gateway)` });
    },
    events,
    clear: () => void events.splice(0),
  };
}

/** Events from `from` on, sorted, with ms relative to `zero`. */
export function merge(zero: number, ...lists: TimelineEvent[][]): { ms: number; source: string; what: string }[] {
  return lists
    .flat()
    .filter((event) => event.at >= zero - 5)
    .sort((a, b) => a.at - b.at)
    .map((event) => ({ ms: Math.round(event.at - zero), source: event.source, what: event.what }));
}

export function formatTimeline(rows: { ms: number; source: string; what: string }[]): string {
  return rows.map((row) => `${String(row.ms).padStart(6)} ms  ${row.source.padEnd(7)}  ${row.what}`).join("\n");
}
