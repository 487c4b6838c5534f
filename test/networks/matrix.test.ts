/**
 * Real networks, the rest of the matrix (docs/networks.md): the proofs of the core set (test/node/networks.test.ts,
 * in `npm test`) with the other client, the long quiet on the relay, TURN over TCP, the GPU behind its own NAT, the
 * address change (proof 5) and the bad link (proof 6). `npm run test:networks` runs both files; this one takes
 * ~4 minutes, too long for CI's budget.
 */
import { describe, expect, it } from "vitest";
import { selectedPair } from "../../tools/ice-policy.ts";
import type { RouterOptions } from "../../tools/netns.ts";
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
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("disconnected");
    expect((await client.state()).statuses.map(([status]) => status)).not.toContain("ready");
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
  /** A phone behind its Wi-Fi router, connected to a GPU at `gpu`; `move()` takes it behind a new cellular NAT. */
  async function phoneAt(gpu: RouterOptions | "public") {
    const cellular = await lab().topology.addRouter(`cellular${++cellulars}`, SYMMETRIC);
    const phone = await site(lab(), "phone", { nat: "port-restricted" });
    const browser = await ends(lab(), phone, await site(lab(), "g", gpu));
    return {
      browser,
      async move() {
        const wifiAddress = phone.publicAddress;
        await phone.moveTo(cellular);
        expect(phone.publicAddress).not.toBe(wifiAddress);
      },
    };
  }

  async function nativeAcrossTheMove(gpu: RouterOptions | "public") {
    const phone = await phoneAt(gpu);
    const { sdk } = await nativeClient(lab(), phone.browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    const sessionId = (await sdk.state()).sessionId;
    await phone.move();
    await sdk.send("echo", { across: "the move" });
    await expectVideo(async () => (await sdk.state()).frames);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    expect((await sdk.state()).sessionId).toBe(sessionId);
    const acrossTheMove = async () => (await sdk.state()).messages.filter((message) => JSON.stringify(message.data).includes("the move")).length;
    await expect.poll(acrossTheMove, WAIT).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(await acrossTheMove()).toBe(1);
    // The signaling socket's TCP connection went with the old address: after the browser's network change the SDK
    // pinged it, got no answer, and replaced it (not ~30 s later, when the keep-alive would have given up).
    expect((await sdk.state()).errors).toContainEqual(
      expect.objectContaining({ code: "DISCONNECTED", message: expect.stringMatching(/no answer after a network change/) }),
    );
    return (await sdk.state()).stats.at(-1)?.generation;
  }

  it("the native SDK, GPU behind a NAT: restarts ICE on the same session, video resumes, a command across the move answered once", async () => {
    expect(await nativeAcrossTheMove({ nat: "port-restricted" })).toBeGreaterThan(1);
  });

  it("the native SDK, public GPU: the browser's ICE finds the new path and the runtime follows it, no restart needed", async () => {
    expect(await nativeAcrossTheMove("public")).toBe(1);
  });

  it("the official client, public GPU: rides the move on its own (the runtime follows the new address)", async () => {
    const phone = await phoneAt("public");
    const client = await officialClient(lab(), phone.browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    await phone.move();
    await expectVideo(async () => (await client.state()).frames);
    expect((await client.state()).status).toBe("ready");
    await client.echo({ after: "the move" });
  });

  it("the official client, GPU behind a NAT: recovers through reconnect() within the grace window, on the same session", async () => {
    const phone = await phoneAt({ nat: "port-restricted" });
    const client = await officialClient(lab(), phone.browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    const sessionId = await client.sessionId();
    await phone.move();
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

  // The native SDK over the same blackout: test/node/networks.test.ts (in CI).
  it("the official client rides a blackout that outlives its NAT mapping: the runtime follows it, video resumes", async () => {
    const phone = await site(lab(), "c", { nat: "symmetric", udpMappingTimeoutS: 1 });
    const browser = await ends(lab(), phone, await site(lab(), "g", "public"));
    const client = await officialClient(lab(), browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    await phone.blackout(3_000);
    await expectVideo(async () => (await client.state()).frames);
    expect((await client.state()).status).toBe("ready");
    await client.echo({ after: "the blackout" });
  });

  // The same with a runtime that does not follow (werift as it is): the runtime's ICE gives up, the gateway tells the
  // client its media is down while the client's own ICE still looks connected, and the SDK restarts ICE.
  it("with a runtime that keeps the old port, the SDK restarts ICE when the session says its media is down", async () => {
    const phone = await site(lab(), "c", { nat: "symmetric", udpMappingTimeoutS: 1 });
    const browser = await ends(lab(), phone, await site(lab(), "g", "public"), lab().turn, { weriftAsIs: true });
    const { sdk } = await nativeClient(lab(), browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    const sessionId = (await sdk.state()).sessionId;
    await phone.blackout(3_000);
    await expect.poll(async () => (await sdk.state()).stats.at(-1)?.generation, { timeout: 60_000, interval: 250 }).toBeGreaterThan(1);
    await expectVideo(async () => (await sdk.state()).frames);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    expect((await sdk.state()).sessionId).toBe(sessionId);
  }, 150_000);
});
