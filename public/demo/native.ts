/**
 * The native SDK (sdk/, served as the ESM bundle /build/reactor-sdk.js). It talks to the gateway over one signaling
 * socket, so it knows the session's queue position and grace deadline, buffers commands until the session is ready,
 * and can drop its own connection to show the automatic recovery.
 */
import type * as Sdk from "../../sdk/src/index.ts";
import { describeError, type Driver, type DriverOptions } from "./driver.ts";

const BUNDLE_URL = "/build/reactor-sdk.js";

let loading: Promise<typeof Sdk> | undefined;

function loadSdk(): Promise<typeof Sdk> {
  // A variable specifier: the bundler leaves the import to the browser, which fetches the separate SDK bundle.
  const url: string = BUNDLE_URL;
  loading ??= (import(url) as Promise<typeof Sdk>).catch((error: unknown) => {
    loading = undefined;
    throw new Error(`could not load ${BUNDLE_URL} (run \`npm run build\`): ${describeError(error)}`);
  });
  return loading;
}

export async function nativeDriver({ apiUrl, model, events }: DriverOptions): Promise<Driver> {
  const { Client } = await loadSdk();
  const client = new Client({ apiUrl, modelName: model });

  const unsubscribe = [
    subscribe(client, "statusChanged", (status) => events.status(status)),
    subscribe(client, "sessionIdChanged", (id) => events.sessionId(id)),
    subscribe(client, "sessionInfo", ({ state, reason, queuePosition, graceDeadline }) =>
      events.sessionFacts({ state, reason, queuePosition, graceDeadline }),
    ),
    subscribe(client, "message", (data) => events.message(data)),
    subscribe(client, "error", (error) => events.error(error)),
    subscribe(client, "trackReceived", (_name, track, stream) => {
      if (track.kind === "video") events.video(stream);
    }),
    subscribe(client, "statsUpdate", ({ rttMs, candidateType, fps, bitrateKbps }) => events.stats({ rttMs, candidateType, fps, bitrateKbps })),
  ];

  return {
    sendsWhileWaiting: true,
    async connect(token) {
      await client.connect(token);
    },
    async disconnect() {
      await client.disconnect(false);
    },
    async dropConnection() {
      client.dropConnection();
    },
    sendPrompt(prompt) {
      // While waiting, a newer prompt replaces an older one still queued: only the latest matters.
      const handle = client.sendCommand("set_prompt", { prompt }, { whileWaiting: "replace" });
      void handle.done.then((state) => {
        if (state === "dropped") events.log("error", `set_prompt dropped${handle.error ? `: ${handle.error}` : ""}`);
        else events.log("info", state === "replaced" ? "set_prompt replaced by a newer prompt" : `set_prompt ${state}`);
      });
    },
    async sendImage(file) {
      const image = await client.uploadFile(file, { onProgress: ({ loaded, total }) => events.uploadProgress(loaded, total) });
      events.log("info", `uploaded ${image.name} (${image.size} bytes)`);
      const handle = client.sendCommand("set_image", { image });
      void handle.done.then((state) => state === "dropped" && events.log("error", `set_image dropped${handle.error ? `: ${handle.error}` : ""}`));
    },
    dispose() {
      for (const off of unsubscribe) off();
    },
  };
}

type ClientEvents = Sdk.ClientEvents;

/** `client.on` with the handler's types taken from the SDK's event map; returns the matching `off`. */
function subscribe<E extends keyof ClientEvents>(client: Sdk.Client, event: E, handler: ClientEvents[E]): () => void {
  client.on(event, handler);
  return () => client.off(event, handler);
}
