/**
 * The official client, `@reactor-team/js-sdk` 2.9.0, unmodified: /build/reactor-official.js is its IIFE bundle,
 * which sets `globalThis.Reactor`. It is loaded on first use only (about 500 KB).
 *
 * Differences from the native SDK that show on the page: it reports no queue position or grace deadline, drops a
 * prompt sent before `ready` (so the prompt box waits for `ready`), and has no way to lose its connection on purpose,
 * so "drop connection" is a recoverable disconnect followed by `reconnect()`.
 */
import type { ConnectionStats, Reactor as ReactorClient, ReactorError, ReactorEvent, ReactorStatus } from "@reactor-team/js-sdk";
import { describeError, type Driver, type DriverOptions } from "./driver.ts";

const BUNDLE_URL = "/build/reactor-official.js";

declare global {
  // The bundle's global (a var, so that it is a property of globalThis).
  var Reactor: typeof ReactorClient | undefined;
}

let loading: Promise<typeof ReactorClient> | undefined;

function loadOfficialClient(): Promise<typeof ReactorClient> {
  loading ??= new Promise<typeof ReactorClient>((resolve, reject) => {
    const script = document.createElement("script");
    script.src = BUNDLE_URL;
    script.onload = () => (globalThis.Reactor ? resolve(globalThis.Reactor) : reject(new Error(`${BUNDLE_URL} did not define Reactor`)));
    script.onerror = () => reject(new Error(`could not load ${BUNDLE_URL} (run \`npm run build\`)`));
    document.head.append(script);
  }).catch((error: unknown) => {
    loading = undefined; // let a later attempt try again
    throw error;
  });
  return loading;
}

export async function officialDriver({ apiUrl, model, events }: DriverOptions): Promise<Driver> {
  const Reactor = await loadOfficialClient();
  const client = new Reactor({ apiUrl, modelName: model });

  const handlers: [ReactorEvent, Parameters<ReactorClient["on"]>[1]][] = [
    ["statusChanged", (status: ReactorStatus) => events.status(status)],
    ["sessionIdChanged", (id: string | undefined) => events.sessionId(id)],
    ["message", (data: unknown) => events.message(data)],
    ["error", (error: ReactorError) => events.error(error)],
    ["trackReceived", (_name: string, track: MediaStreamTrack, stream: MediaStream) => track.kind === "video" && events.video(stream)],
    // Not its framesPerSecond (the browser's estimate jumps after a reconnect): the page counts presented frames.
    ["statsUpdate", (stats: ConnectionStats) => events.stats({ rttMs: stats.rtt, candidateType: stats.candidateType })],
  ];
  for (const [event, handler] of handlers) client.on(event, handler);
  events.sessionFacts({}); // this client does not report them

  return {
    sendsWhileWaiting: false,
    async connect(token) {
      const jwt = await token();
      // A failure is reported as an `error` event (CONNECTION_FAILED) before connect() rethrows it: logged once.
      await client.connect(jwt).catch(() => undefined);
    },
    async disconnect() {
      await client.disconnect(false);
    },
    async dropConnection() {
      await client.disconnect(true);
      await client.reconnect();
    },
    sendPrompt(prompt) {
      void client.sendCommand("set_prompt", { prompt }, "application").catch((error: unknown) => events.log("error", describeError(error)));
    },
    async sendImage(file) {
      const image = await client.uploadFile(file);
      events.log("info", `uploaded ${image.name} (${image.size} bytes)`);
      await client.sendCommand("set_image", { image }, "application");
    },
    dispose() {
      for (const [event, handler] of handlers) client.off(event, handler);
    },
  };
}
