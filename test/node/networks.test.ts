/**
 * Real networks, the core proofs `npm test` runs (docs/networks.md): Chromium inside a client namespace behind a NAT
 * router, the runtime agent inside a GPU namespace behind its own, the gateway and coturn on the topology's internet
 * side (tools/network-lab.ts). Each fails if its mechanism is gone: without TURN from the gateway the symmetric-NAT
 * case cannot connect (proof 1 is that very case), TURN over TLS on 443 is the only way out of an HTTPS-only
 * firewall, and a server-reflexive path exists only because both sides gather with STUN.
 *
 * The blackout (proof 6) shows the runtime following a client whose NAT gave it a new port. The rest of the matrix
 * (the other client, the address change, the bad link) is test/networks/, run by `npm run test:networks`: too long
 * for CI's budget.
 */
import { describe, expect, it } from "vitest";
import { selectedPair } from "../../tools/ice-policy.ts";
import { ends, expectVideo, nativeClient, officialClient, site, SYMMETRIC, useNetworkLab, WAIT } from "./support/network-scenarios.ts";

const lab = useNetworkLab();

describe("proof 1 — symmetric NAT on both sides, STUN only: no path, said promptly", () => {
  it("the native SDK reports ICE_FAILED, naming TURN as the way out", async () => {
    const browser = await ends(lab(), await site(lab(), "c", SYMMETRIC), await site(lab(), "g", SYMMETRIC), lab().stunOnly);
    const { sdk } = await nativeClient(lab(), browser, lab().stunOnly);
    await expect
      .poll(async () => (await sdk.state()).errors, { timeout: 30_000, interval: 250 })
      .toContainEqual(expect.objectContaining({ code: "ICE_FAILED", message: expect.stringMatching(/TURN/) }));
    expect((await sdk.state()).statuses).not.toContain("ready");
  });
});

describe("proof 2 — symmetric NAT on both sides, TURN from the gateway", () => {
  it("the official client connects through the relay; video flows; commands are answered", async () => {
    const browser = await ends(lab(), await site(lab(), "c", SYMMETRIC), await site(lab(), "g", SYMMETRIC));
    const client = await officialClient(lab(), browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    expect(await selectedPair(client.page)).toMatchObject({ local: { candidateType: "relay", relayProtocol: "udp" } });
    await client.echo({ n: 1 });
  });
});

describe("proof 3 — a network that blocks UDP, and one that lets only TCP 443 out", () => {
  it("only TCP 443: the official client relays over TURN/TLS on 443; commands are answered", async () => {
    // The gateway's and the pages' ports stand in for HTTPS on 443 (they are plain HTTP on other ports here).
    const allowTcp = [lab().turn.gateway.port, lab().officialSite.port];
    const browser = await ends(
      lab(),
      await site(lab(), "c", { nat: "port-restricted", firewall: "tcp-443-only", allowTcp }),
      await site(lab(), "g", "public"),
    );
    const client = await officialClient(lab(), browser);
    await expect.poll(async () => (await client.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await client.state()).frames);
    expect(await selectedPair(client.page)).toMatchObject({ local: { candidateType: "relay", relayProtocol: "tls" } });
    await client.echo({ over: "tls" });
  });
});

describe("proof 4 — endpoint-independent NATs with STUN: a server-reflexive path, TURN not used", () => {
  it("the native SDK connects directly although TURN was offered", async () => {
    const browser = await ends(lab(), await site(lab(), "c", { nat: "full-cone" }), await site(lab(), "g", { nat: "port-restricted" }));
    const { page, sdk } = await nativeClient(lab(), browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    const pair = await selectedPair(page);
    expect(pair?.local.candidateType).not.toBe("relay");
    // The GPU is behind a NAT: the client reaches it only at an address learnt through STUN (or its checks).
    expect(["srflx", "prflx"]).toContain(pair?.remote.candidateType);
  });
});

describe("proof 6 — the NAT forgets the client's mapping during a quiet spell", () => {
  // The phone's symmetric NAT forgets its mapping during the blackout (short enough that the browser's ICE still
  // counts its pair alive) and gives the link a new port. The client's ICE keeps checking from there, nominating
  // its pair again; the runtime follows it to the new address (runtime/peer.ts, followRenomination) — werift alone
  // would keep sending to the old port until its consent checks gave up ~30 s later.
  it("a UDP mapping that expires in a 3 s blackout (1 s timeout): the runtime follows the new port, video resumes, no ICE restart", async () => {
    const phone = await site(lab(), "c", { nat: "symmetric", udpMappingTimeoutS: 1 });
    const browser = await ends(lab(), phone, await site(lab(), "g", "public"));
    const { sdk } = await nativeClient(lab(), browser);
    await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");
    await expectVideo(async () => (await sdk.state()).frames);
    const sessionId = (await sdk.state()).sessionId;
    await phone.blackout(3_000);
    await expectVideo(async () => (await sdk.state()).frames);
    const state = await sdk.state();
    expect(state.sessionId).toBe(sessionId);
    expect(state.stats.at(-1)?.generation).toBe(1);
    expect(state.statuses.filter((status) => status === "ready")).toHaveLength(1); // never left ready
    await sdk.send("echo", { after: "the blackout" });
    await expect
      .poll(async () => (await sdk.state()).messages.map((message) => message.data), WAIT)
      .toContainEqual(expect.objectContaining({ data: { after: "the blackout" } }));
  });
});
