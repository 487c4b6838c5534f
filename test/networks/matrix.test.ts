/**
 * Real networks, the rest of the matrix (docs/networks.md): the proofs of the core set (test/node/networks.test.ts,
 * in `npm test`) with the other client, the long quiet on the relay, TURN over TCP, the GPU behind its own NAT, the
 * address change (proof 5) and the bad link (proof 6). `npm run test:networks` runs both files; this one takes
 * ~4 minutes, too long for CI's budget.
 */
import { describe, expect, it } from "vitest";
import { selectedPair } from "../../tools/ice-policy.ts";
import { ends, expectVideo, nativeClient, officialClient, site, SYMMETRIC, useNetworkLab, WAIT } from "../node/support/network-scenarios.ts";

const lab = useNetworkLab();
let cellulars = 0;

describe("proof 1 — symmetric NAT on both sides, STUN only: no path, said promptly", () => {
  it("the official client reports the failed transport and disconnects", async () => {
    const browser = await ends(lab(), await site(lab(), "c", SYMMETRIC), await site(lab(), "g", SYMMETRIC), lab().stunOnly);
    const client = await officialClient(lab(), browser, lab().stunOnly);
    await expect
      .poll(async () => (await client.state()).errors, { timeout: 30_000, interval: 250 })
      .toContainEqual(expect.objectContaining({ code: "GPU_CONNECTION_ERROR", recoverable: true }));
    const state = await client.state();
    expect(state.status).toBe("disconnected");
    expect(state.statuses.map(([status]) => status)).not.toContain("ready");
  });
});

describe("proof 2 — symmetric NAT on both sides, TURN from the gateway", () => {
  it("the official client connects through the relay; video flows; commands are answered, also after 35 s idle", async () => {
    const browser = await ends(lab(), await site(lab(), "c", SYMMETRIC), await site(lab(), "g", SYMMETRIC));
    const client = await officialClient(lab(), browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    expect(await selectedPair(client.page)).toMatchObject({ local: { candidateType: "relay", relayProtocol: "udp" } });
    await client.echo({ n: 1 });
    // The data channel stays alive through the relay: the client's 5 s pings and a command after a quiet while.
    await new Promise((resolve) => setTimeout(resolve, 35_000));
    await client.echo({ n: 2 });
    await expectVideo(async () => (await client.state()).frames);
  }, 150_000);

  it("the native SDK connects through the relay; video flows; commands are answered", async () => {
    const browser = await ends(lab(), await site(lab(), "c", SYMMETRIC), await site(lab(), "g", SYMMETRIC));
    const { page, sdk } = await nativeClient(lab(), browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    expect(await selectedPair(page)).toMatchObject({ local: { candidateType: "relay", relayProtocol: "udp" } });
    await sdk.send("echo", { n: 1 });
    await expect
      .poll(async () => (await sdk.state()).messages.map((message) => message.data), WAIT)
      .toContainEqual(expect.objectContaining({ data: { n: 1 } }));
  });
});

describe("proof 3 — a network that blocks UDP, and one that lets only TCP 443 out", () => {
  it("no UDP: the native SDK relays over TURN/TCP", async () => {
    const browser = await ends(lab(), await site(lab(), "c", { nat: "port-restricted", firewall: "no-udp" }), await site(lab(), "g", "public"));
    const { page, sdk } = await nativeClient(lab(), browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    expect(await selectedPair(page)).toMatchObject({ local: { candidateType: "relay", relayProtocol: "tcp" } });
  });
});

describe("proof 7 — the GPU behind its own NAT, with no public port", () => {
  it("serves a client on the internet without TURN (the GPU's checks open the path)", async () => {
    const browser = await ends(lab(), await site(lab(), "c", "public"), await site(lab(), "g", SYMMETRIC), lab().stunOnly);
    const client = await officialClient(lab(), browser, lab().stunOnly);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    const pair = await selectedPair(client.page);
    expect(pair?.local.candidateType).not.toBe("relay");
    expect(["srflx", "prflx"]).toContain(pair?.remote.candidateType);
    await client.echo({ gpu: "behind nat" });
  });
  // Both behind symmetric NATs (the GPU's relay candidate from the gateway's credentials): proof 2.
});

describe("proof 5 — the client's address changes mid-session (Wi-Fi → cellular)", () => {
  it("the native SDK restarts ICE on the same session: video resumes, a command sent across the move is answered once", async () => {
    const cellular = await lab().topology.addRouter(`cellular${++cellulars}`, SYMMETRIC);
    const phone = await site(lab(), "phone", { nat: "port-restricted" });
    const browser = await ends(lab(), phone, await site(lab(), "g", "public"));
    const { sdk } = await nativeClient(lab(), browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    const sessionId = (await sdk.state()).sessionId;
    const wifiAddress = phone.publicAddress;

    await phone.moveTo(cellular);
    expect(phone.publicAddress).not.toBe(wifiAddress);
    await sdk.send("echo", { across: "the move" });
    await expectVideo(async () => (await sdk.state()).frames);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    const state = await sdk.state();
    expect(state.sessionId).toBe(sessionId);
    expect(state.stats.at(-1)?.generation).toBeGreaterThan(1);
    await expect
      .poll(async () => (await sdk.state()).messages.filter((message) => JSON.stringify(message.data).includes("the move")).length, WAIT)
      .toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await sdk.state()).messages.filter((message) => JSON.stringify(message.data).includes("the move"))).toHaveLength(1);
  });

  it("the official client recovers through reconnect() within the grace window, on the same session", async () => {
    const cellular = await lab().topology.addRouter(`cellular${++cellulars}`, SYMMETRIC);
    const phone = await site(lab(), "phone", { nat: "port-restricted" });
    const browser = await ends(lab(), phone, await site(lab(), "g", "public"));
    const client = await officialClient(lab(), browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    const sessionId = await client.sessionId();

    await phone.moveTo(cellular);
    // The official client does not notice a dead path by itself (its status stays "ready" while the video
    // freezes): the app sees the freeze and takes the client's own recovery path, disconnect(true) + reconnect().
    const frozenAt = (await client.state()).frames;
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect((await client.state()).frames).toBeLessThan(frozenAt + 25);
    await client.disconnect(true);
    await client.reconnect();
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    expect(await client.sessionId()).toBe(sessionId);
    await expectVideo(async () => (await client.state()).frames);
    await client.echo({ after: "the move" });
  });
});

describe("proof 6 — 150 ms round trip, 30 ms jitter, 5 % loss", () => {
  it("the official client connects, video flows and commands are answered over the bad link", async () => {
    const link = { delayMs: 75, jitterMs: 15, lossPercent: 5 };
    const browser = await ends(lab(), await site(lab(), "c", { nat: "port-restricted" }, link), await site(lab(), "g", "public"));
    const client = await officialClient(lab(), browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    await client.echo({ over: "a bad link" });
  });

  it("the native SDK rides the bad link", async () => {
    const link = { delayMs: 75, jitterMs: 15, lossPercent: 5 };
    const browser = await ends(lab(), await site(lab(), "c", { nat: "port-restricted" }, link), await site(lab(), "g", "public"));
    const { sdk } = await nativeClient(lab(), browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await expectVideo(async () => (await sdk.state()).frames);
    await sdk.send("echo", { over: "a bad link" });
    await expect
      .poll(async () => (await sdk.state()).messages.map((message) => message.data), WAIT)
      .toContainEqual(expect.objectContaining({ data: { over: "a bad link" } }));
    expect((await sdk.state()).status).toBe("ready");
  });
});
