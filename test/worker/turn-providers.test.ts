/**
 * TURN credential providers (src/turn/): coturn's REST-API secret scheme checked against an independent HMAC
 * (node:crypto), Cloudflare Realtime TURN against a loopback stand-in of its API, and the fallback chain.
 * Inside workerd, like the gateway: the stand-in runs in Node (test/node/support/cloudflare-turn-setup.ts, the worker
 * project's global setup) and is driven through its control routes.
 */
import { createHmac } from "node:crypto";
import { beforeEach, describe, expect, inject, it } from "vitest";
import { cloudflareTurnProvider, withoutPort53 } from "../../src/turn/cloudflare.ts";
import { coturnProvider, parseTurnHosts, turnPassword, turnUris } from "../../src/turn/coturn.ts";
import { issueIceServers, turnConfig } from "../../src/turn/issue.ts";
import { ProviderError } from "../../src/turn/provider.ts";

type StandInBehaviour = "ok" | "port53-only" | "error-500" | "unauthorized" | "garbage" | "hang";

const STUN = [{ urls: ["stun:stun.example.test:3478"] }];
const NOW = 1_800_000_000;

describe("coturn (use-auth-secret)", () => {
  it("username is <expiry>:<subject> and password is base64(HMAC-SHA1(secret, username))", async () => {
    const provider = coturnProvider({ secret: "s3cret", hosts: parseTurnHosts("turn.example.test"), stun: STUN });
    const issued = await provider.issue({ subject: "sess_abc", ttlSeconds: 600, now: NOW });
    const turn = issued.iceServers[1]!;
    expect(turn.username).toBe(`${NOW + 600}:sess_abc`);
    expect(turn.credential).toBe(createHmac("sha1", "s3cret").update(turn.username!).digest("base64"));
    expect(issued).toMatchObject({ provider: "coturn", expiresAt: NOW + 600 });
    expect(issued.iceServers[0]).toEqual(STUN[0]);
  });

  it("lists UDP, then TCP, then TLS on 443 for every host, in the configured order", async () => {
    const provider = coturnProvider({ secret: "x", hosts: parseTurnHosts("eu.example.test, us.example.test:3479:5349"), stun: [] });
    const { iceServers } = await provider.issue({ subject: "s", ttlSeconds: 60, now: NOW });
    expect(iceServers.map((server) => server.urls)).toEqual([
      ["turn:eu.example.test:3478?transport=udp", "turn:eu.example.test:3478?transport=tcp", "turns:eu.example.test:443?transport=tcp"],
      ["turn:us.example.test:3479?transport=udp", "turn:us.example.test:3479?transport=tcp", "turns:us.example.test:5349?transport=tcp"],
    ]);
  });

  it("offers no turns: URI when the TLS port is 0, and reads IPv6 literals", () => {
    expect(turnUris(parseTurnHosts("127.0.0.1:3478:0")[0]!)).toEqual(["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]);
    expect(parseTurnHosts("[::1]:3478")).toEqual([{ host: "[::1]", port: 3478, tlsPort: 443 }]);
  });

  it.each(["turn:host", "host:", "host:99999", "host:1:2:3", "ho st"])("refuses TURN_HOSTS entry %j", (entry) => {
    expect(() => parseTurnHosts(entry)).toThrow(/TURN_HOSTS/);
  });

  it("refuses an empty secret or host list", () => {
    expect(() => coturnProvider({ secret: "", hosts: parseTurnHosts("h"), stun: [] })).toThrow(/TURN_SECRET/);
    expect(() => coturnProvider({ secret: "x", hosts: [], stun: [] })).toThrow(/TURN_HOSTS/);
  });

  it("different secrets give different passwords", async () => {
    expect(await turnPassword("a", "1:u")).not.toBe(await turnPassword("b", "1:u"));
  });
});

describe("Cloudflare Realtime TURN (stand-in of its API)", () => {
  const address = inject("cloudflareTurnStandIn");
  /** The stand-in, over its control routes (test/node/support/cloudflare-turn.ts). */
  const standIn = {
    ...address,
    async setBehaviour(behaviour: StandInBehaviour): Promise<void> {
      const response = await fetch(`${address.url}/__stand-in/behaviour`, { method: "PUT", body: behaviour });
      if (response.status !== 204) throw new Error(`the stand-in refused behaviour ${behaviour}: HTTP ${response.status}`);
    },
    async requests(): Promise<{ ttl: unknown; authorized: boolean }[]> {
      return (await fetch(`${address.url}/__stand-in/requests`)).json();
    },
  };
  const provider = (overrides: { apiToken?: string; timeoutMs?: number } = {}) =>
    cloudflareTurnProvider({
      keyId: standIn.keyId,
      apiToken: overrides.apiToken ?? standIn.apiToken,
      apiUrl: standIn.url,
      timeoutMs: overrides.timeoutMs ?? 2000,
    });

  beforeEach(async () => {
    await standIn.setBehaviour("ok");
  });

  it("asks for the ttl with the key's bearer token and maps the answer, without port-53 URLs", async () => {
    const issued = await provider().issue({ subject: "s", ttlSeconds: 900, now: NOW });
    expect((await standIn.requests()).at(-1)).toEqual({ ttl: 900, authorized: true });
    expect(issued.provider).toBe("cloudflare");
    expect(issued.expiresAt).toBe(NOW + 900);
    expect(issued.iceServers).toEqual([
      { urls: ["stun:stun.example.test:3478"] },
      {
        urls: [
          "turn:turn.example.test:3478?transport=udp",
          "turn:turn.example.test:3478?transport=tcp",
          "turns:turn.example.test:5349?transport=tcp",
          "turns:turn.example.test:443?transport=tcp",
        ],
        username: expect.any(String),
        credential: "cf-credential",
      },
    ]);
  });

  const failures = [
    ["unauthorized", "answered HTTP 401"],
    ["error-500", "answered HTTP 500"],
    ["garbage", "unexpected answer"],
    ["port53-only", "only port-53 URLs"],
    ["hang", "no answer within 300 ms"],
  ] as const;
  it.each(failures)("%s is a ProviderError naming the reason", async (behaviour, reason) => {
    await standIn.setBehaviour(behaviour);
    const issuing = provider({ timeoutMs: 300 }).issue({ subject: "s", ttlSeconds: 60, now: NOW });
    await expect(issuing).rejects.toBeInstanceOf(ProviderError);
    await expect(issuing).rejects.toThrow(reason);
  });

  it("a wrong API token is refused by the API, and the token never appears in the error", async () => {
    const error = await provider({ apiToken: "wrong-token" })
      .issue({ subject: "s", ttlSeconds: 60, now: NOW })
      .catch((e: Error) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect(String(error)).not.toContain("wrong-token");
  });

  it("an unreachable API is a ProviderError", async () => {
    const unreachable = cloudflareTurnProvider({ keyId: "k", apiToken: "t", apiUrl: "http://127.0.0.1:1", timeoutMs: 1000 });
    await expect(unreachable.issue({ subject: "s", ttlSeconds: 60, now: NOW })).rejects.toThrow(/cloudflare: request failed/);
  });

  it("port-53 filtering keeps other ports that merely contain 53", () => {
    expect(withoutPort53([{ urls: ["turn:h:53?transport=udp", "turn:h:5349?transport=tcp", "stun:h:53", "turn:h53.example:3478"] }])).toEqual([
      { urls: ["turn:h:5349?transport=tcp", "turn:h53.example:3478"] },
    ]);
  });

  describe("the fallback chain", () => {
    const env = () => ({
      TURN_SECRET: "coturn-secret",
      TURN_HOSTS: "turn.local.test",
      CLOUDFLARE_TURN_KEY_ID: standIn.keyId,
      CLOUDFLARE_TURN_API_TOKEN: standIn.apiToken,
      CLOUDFLARE_TURN_API_URL: standIn.url,
      TURN_PROVIDER_TIMEOUT_MS: "300",
    });

    it("tries providers in TURN_PROVIDERS order and uses the first that answers", async () => {
      const lines: string[] = [];
      const issued = await issueIceServers(turnConfig({ ...env(), TURN_PROVIDERS: "cloudflare,coturn" }, STUN), { subject: "s", now: NOW }, (l) =>
        lines.push(l),
      );
      expect(issued.provider).toBe("cloudflare");
      expect(lines).toEqual([]);
    });

    it("falls back to the next provider with the reason logged, never a secret", async () => {
      await standIn.setBehaviour("hang");
      const lines: string[] = [];
      const issued = await issueIceServers(turnConfig({ ...env(), TURN_PROVIDERS: "cloudflare,coturn" }, STUN), { subject: "s", now: NOW }, (l) =>
        lines.push(l),
      );
      expect(issued.provider).toBe("coturn");
      expect(lines).toEqual(["ice servers: cloudflare: no answer within 300 ms; falling back to coturn"]);
      expect(lines.join()).not.toMatch(/coturn-secret|test-turn-api-token/);
    });

    it("falls back to STUN only when every provider fails", async () => {
      await standIn.setBehaviour("error-500");
      const lines: string[] = [];
      const issued = await issueIceServers(turnConfig({ ...env(), TURN_PROVIDERS: "cloudflare" }, STUN), { subject: "s", now: NOW }, (l) =>
        lines.push(l),
      );
      expect(issued).toEqual({ provider: "stun", iceServers: STUN });
      expect(lines).toEqual(["ice servers: cloudflare: answered HTTP 500; falling back to STUN only"]);
    });

    it("without TURN settings it is STUN only; the default order is coturn, then Cloudflare", async () => {
      expect(await issueIceServers(turnConfig({}, STUN), { subject: "s", now: NOW })).toEqual({ provider: "stun", iceServers: STUN });
      expect(turnConfig(env(), STUN).providers.map((p) => p.name)).toEqual(["coturn", "cloudflare"]);
    });

    it("credentials never outlive the requester's token, and default to TURN_TTL_SECONDS", async () => {
      const config = turnConfig({ TURN_SECRET: "x", TURN_HOSTS: "h", TURN_TTL_SECONDS: "7200" }, STUN);
      expect((await issueIceServers(config, { subject: "s", now: NOW })).expiresAt).toBe(NOW + 7200);
      expect((await issueIceServers(config, { subject: "s", now: NOW, notAfter: NOW + 300 })).expiresAt).toBe(NOW + 300);
      const lines: string[] = [];
      const tooShort = await issueIceServers(config, { subject: "s", now: NOW, notAfter: NOW + 10 }, (l) => lines.push(l));
      expect(tooShort).toEqual({ provider: "stun", iceServers: STUN });
      expect(lines[0]).toMatch(/too short for TURN/);
    });

    it("refuses settings that name an unconfigured provider or are half set", () => {
      expect(() => turnConfig({ TURN_PROVIDERS: "coturn" }, STUN)).toThrow(/not configured/);
      expect(() => turnConfig({ TURN_PROVIDERS: "xirsys" }, STUN)).toThrow(/not configured/);
      expect(() => turnConfig({ TURN_HOSTS: "h" }, STUN)).toThrow(/TURN_SECRET/);
      expect(() => turnConfig({ CLOUDFLARE_TURN_KEY_ID: "k" }, STUN)).toThrow(/API token/);
      expect(() => turnConfig({ TURN_SECRET: "x", TURN_HOSTS: "h", TURN_TTL_SECONDS: "-1" }, STUN)).toThrow(/TURN_TTL_SECONDS/);
    });
  });
});
