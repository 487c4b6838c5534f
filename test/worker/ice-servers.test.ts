/** STUN_URLS: unset → the default STUN server, empty → no ICE servers at all (offline and loopback development). */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { DEFAULT_STUN_URLS } from "../../src/config.ts";
import { stunServers } from "../../src/ice-servers.ts";
import { clientHeaders, createSession, freshModel, newClient, openSignal, ScriptedRuntime } from "./scripted.ts";

describe("stunServers", () => {
  it.each([
    ["unset: the default STUN server", {}, [{ urls: [DEFAULT_STUN_URLS] }]],
    ["empty: none", { STUN_URLS: "" }, []],
    ["only separators and blanks: none", { STUN_URLS: " , ," }, []],
    [
      "a list: one server with every URL, trimmed",
      { STUN_URLS: "stun:a.example:3478, stun:b.example:3478" },
      [{ urls: ["stun:a.example:3478", "stun:b.example:3478"] }],
    ],
  ])("%s", (_, settings, expected) => {
    expect(stunServers(settings)).toEqual(expected);
  });
});

describe("GET …/transport/webrtc/ice_servers", () => {
  const app = createApp();

  async function iceServers(stunUrls: string | undefined) {
    const client = await newClient();
    const { session_id } = await createSession(client, freshModel());
    const bindings = { ...env, STUN_URLS: stunUrls, TURN_SECRET: undefined, TURN_HOSTS: undefined } as Env; // STUN only
    const response = await app.request(`/sessions/${session_id}/transport/webrtc/ice_servers`, { headers: clientHeaders(client) }, bindings);
    expect(response.status).toBe(200);
    return response.json();
  }

  it("STUN_URLS empty: no ICE servers", async () => {
    expect(await iceServers("")).toEqual({ ice_servers: [] });
  });

  it("STUN_URLS unset: the default STUN server", async () => {
    expect(await iceServers(undefined)).toEqual({ ice_servers: [{ uris: [DEFAULT_STUN_URLS] }] });
  });
});

describe("the native socket's ice_servers frame", () => {
  it("carries the configured STUN servers first once a GPU is assigned (the worker project keeps wrangler.toml's STUN_URLS)", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "rt-ice", 1).connect();
    const client = await newClient();
    const { session_id } = await createSession(client, model);
    await runtime.acceptAssignment();
    const signal = await openSignal(client, session_id);
    const frame = await signal.next("ice_servers");
    expect((frame.ice_servers as unknown[])[0]).toEqual(stunServers(env)[0]);
    signal.close();
    await runtime.crash();
  });
});
