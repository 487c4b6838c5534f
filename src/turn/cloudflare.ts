/**
 * Cloudflare Realtime TURN: credentials come from its API, `POST <api>/v1/turn/keys/<key id>/credentials/
 * generate-ice-servers` with the key's API token, body `{ ttl }`, answered 201 `{ iceServers: [...] }` in the
 * browser's RTCIceServer shape. Port-53 URLs are dropped: browsers block that port, so they only cost the client a
 * failed attempt. Any failure (status, shape, timeout) is a ProviderError, so the next provider takes over.
 */
import { IceServer } from "../../protocol/common.ts";
import { array, isPlainObject, object, parse, type Infer } from "../../protocol/schema.ts";
import { ProviderError, type IceServerProvider, type IceServerRequest, type IssuedIceServers } from "./provider.ts";

export const DEFAULT_CLOUDFLARE_TURN_API = "https://rtc.live.cloudflare.com";

const GenerateIceServersResponse = object({ iceServers: array(IceServer, { min: 1, max: 16 }) });
type GenerateIceServersResponse = Infer<typeof GenerateIceServersResponse>;

export interface CloudflareTurnOptions {
  keyId: string;
  apiToken: string;
  /** Default DEFAULT_CLOUDFLARE_TURN_API; a stand-in in tests. */
  apiUrl?: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** URLs on port 53 (`host:53` followed by `?`, `/` or the end). */
const PORT_53 = /:53(?=[?/]|$)/;

export function withoutPort53(servers: IceServer[]): IceServer[] {
  return servers.map((server) => ({ ...server, urls: server.urls.filter((url) => !PORT_53.test(url)) })).filter((server) => server.urls.length > 0);
}

/** RTCIceServer allows `urls` to be one string; our shape always has an array. */
function urlsAsArrays(body: unknown): unknown {
  if (!isPlainObject(body) || !Array.isArray(body.iceServers)) return body;
  const iceServers = body.iceServers.map((server: unknown) =>
    isPlainObject(server) && typeof server.urls === "string" ? { ...server, urls: [server.urls] } : server,
  );
  return { ...body, iceServers };
}

export function cloudflareTurnProvider(options: CloudflareTurnOptions): IceServerProvider {
  if (!options.keyId || !options.apiToken) throw new Error("cloudflare TURN provider: key id and API token are required");
  const base = (options.apiUrl || DEFAULT_CLOUDFLARE_TURN_API).replace(/\/+$/, "");
  const endpoint = `${base}/v1/turn/keys/${encodeURIComponent(options.keyId)}/credentials/generate-ice-servers`;
  const doFetch = options.fetch ?? fetch;

  async function requestIceServers(ttlSeconds: number): Promise<GenerateIceServersResponse> {
    let response: Response;
    try {
      response = await doFetch(endpoint, {
        method: "POST",
        headers: { Authorization: `Bearer ${options.apiToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ ttl: ttlSeconds }),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
      throw new ProviderError("cloudflare", timedOut ? `no answer within ${options.timeoutMs} ms` : `request failed (${String(error)})`);
    }
    if (response.status !== 201 && response.status !== 200) {
      await response.body?.cancel();
      throw new ProviderError("cloudflare", `answered HTTP ${response.status}`);
    }
    const body: unknown = await response.json().catch(() => undefined);
    const parsed = parse(GenerateIceServersResponse, urlsAsArrays(body));
    if (!parsed.ok) throw new ProviderError("cloudflare", `unexpected answer (${parsed.error.message})`);
    return parsed.value;
  }

  return {
    name: "cloudflare",
    async issue({ ttlSeconds, now }: IceServerRequest): Promise<IssuedIceServers> {
      const { iceServers } = await requestIceServers(ttlSeconds);
      const usable = withoutPort53(iceServers);
      if (usable.length === 0) throw new ProviderError("cloudflare", "answer held only port-53 URLs");
      return { iceServers: usable, expiresAt: now + ttlSeconds, provider: "cloudflare" };
    },
  };
}
