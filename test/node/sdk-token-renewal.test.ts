/**
 * The native SDK keeps its signaling socket past its token's expiry by renewing the token in place, against a real
 * gateway (`wrangler dev`) and runtime agent, in Node (no media: `RTCPeerConnection: null`):
 *   - with a token function, it asks for a fresh token ahead of expiry and sends it (`token` → `token_accepted`):
 *     the socket stays open past the first token's `exp`, no reconnect;
 *   - with a fixed token, the gateway closes the socket at `exp` (4001) and the client fails with TOKEN_EXPIRED.
 * The renewal schedule itself (80 % of the lifetime, or 60 s before the end, not before half) is checked directly.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { Client, type ReactorError } from "../../sdk/src/index.ts";
import { renewAtMs, tokenTimes } from "../../sdk/src/signaling-socket.ts";
import { startGateway, type TestGateway } from "../../tools/gateway.ts";

let gateway: TestGateway;
let agent: RuntimeAgent;
let apiKey: string;

beforeAll(async () => {
  gateway = await startGateway({ vars: { STUN_URLS: "" } });
  agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model: demoModel(), slots: 2, log: () => undefined });
  await agent.start();
  const created = await fetch(`${gateway.url}/admin/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${gateway.adminToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ account: "renewal" }),
  });
  apiKey = ((await created.json()) as { key: string }).key;
});

afterAll(async () => {
  await agent?.stop();
  await gateway?.stop();
});

async function mint(seconds: number): Promise<string> {
  const minted = await fetch(`${gateway.url}/tokens`, {
    method: "POST",
    headers: { "Reactor-API-Key": apiKey, "Content-Type": "application/json" },
    body: JSON.stringify({ expires_after: seconds }),
  });
  return ((await minted.json()) as { jwt: string }).jwt;
}

/** globalThis.WebSocket, recording what each socket sends, receives and how it closes. */
function recordingWebSocket() {
  const log = { sent: [] as string[], received: [] as string[], closes: [] as number[], opened: 0 };
  class Recording extends WebSocket {
    constructor(url: string, protocols: string[]) {
      super(url, protocols);
      log.opened++;
      this.addEventListener("message", (event) => log.received.push(String(event.data)));
      this.addEventListener("close", (event) => log.closes.push(event.code));
    }
    override send(data: string): void {
      log.sent.push(data);
      super.send(data);
    }
  }
  return { log, WebSocket: Recording };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("SDK token renewal on the signaling socket", () => {
  it("the schedule: 80 % of a 6 h token, 60 s before the end of a 2 min one, half of a 12 s one", () => {
    expect(renewAtMs({ iat: 0, exp: 6 * 3600 })).toBeCloseTo(17_280_000); // 4 h 48 min
    expect(renewAtMs({ iat: 0, exp: 120 })).toBe(60_000);
    expect(renewAtMs({ iat: 0, exp: 12 })).toBe(6000);
    expect(tokenTimes("x.eyJleHAiOjEwLCJpYXQiOjJ9.y")).toEqual({ exp: 10, iat: 2 });
    expect(tokenTimes("garbage")).toBeUndefined();
  });

  it("with a token function: renewed in place before exp; the socket outlives the first token, no reconnect", async () => {
    const { log, WebSocket } = recordingWebSocket();
    const client = new Client({ apiUrl: gateway.url, modelName: "demo", RTCPeerConnection: null, WebSocket, keepAliveMs: 0 });
    const errors: ReactorError[] = [];
    client.on("error", (error) => errors.push(error));
    let calls = 0;
    const first = await mint(12);
    const exp = tokenTimes(first)!.exp;
    try {
      await client.connect(async () => (++calls === 1 ? first : mint(600)));
      // Past the first token's expiry (and the gateway's alarm for it).
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 3000);
      expect(log.sent.filter((frame) => frame.includes('"type":"token"'))).toHaveLength(1);
      expect(log.received.filter((frame) => frame.includes('"type":"token_accepted"'))).toHaveLength(1);
      expect(log.closes).toEqual([]);
      expect(log.opened).toBe(1);
      expect(errors.map((error) => error.code)).toEqual([]);
      expect(client.getStatus()).not.toBe("disconnected");
    } finally {
      await client.disconnect().catch(() => undefined);
    }
  });

  it("with a fixed token: closed at exp with 4001, and the client fails with TOKEN_EXPIRED", async () => {
    const { log, WebSocket } = recordingWebSocket();
    const client = new Client({ apiUrl: gateway.url, modelName: "demo", RTCPeerConnection: null, WebSocket, keepAliveMs: 0 });
    const errors: ReactorError[] = [];
    client.on("error", (error) => errors.push(error));
    const token = await mint(5);
    try {
      await client.connect(token);
      await expect.poll(() => errors.map((error) => error.code), { timeout: 20_000, interval: 200 }).toContain("TOKEN_EXPIRED");
      expect(log.closes).toEqual([4001]);
      expect(log.sent.filter((frame) => frame.includes('"type":"token"'))).toEqual([]);
      expect(client.getStatus()).toBe("disconnected");
    } finally {
      await client.disconnect().catch(() => undefined);
    }
  });
});
