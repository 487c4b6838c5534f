/**
 * Which ICE servers a client or runtime gets: the configured TURN providers in order (`TURN_PROVIDERS`, default
 * every configured one, coturn first), falling back to the next on any failure with the reason logged, and to STUN
 * only when none is configured or all failed.
 *
 * Settings (wrangler vars, secrets marked *):
 *   TURN_SECRET*, TURN_HOSTS                         coturn REST-API secret mode (see coturn.ts)
 *   CLOUDFLARE_TURN_KEY_ID, CLOUDFLARE_TURN_API_TOKEN*, CLOUDFLARE_TURN_API_URL
 *   TURN_PROVIDERS                                   e.g. "cloudflare,coturn"
 *   TURN_TTL_SECONDS (default 3600), TURN_PROVIDER_TIMEOUT_MS (default 2000)
 */
import type { IceServer } from "../../protocol/common.ts";
import { cloudflareTurnProvider } from "./cloudflare.ts";
import { coturnProvider, parseTurnHosts } from "./coturn.ts";
import { ProviderError, type IceServerProvider, type IssuedIceServers, type ProviderName } from "./provider.ts";

export const DEFAULT_TURN_TTL_SECONDS = 3600;
/** Shortest credential worth handing out: a client needs time to connect with it. */
export const MIN_TURN_TTL_SECONDS = 60;
const DEFAULT_PROVIDER_TIMEOUT_MS = 2000;

export interface TurnEnv {
  TURN_PROVIDERS?: string;
  TURN_SECRET?: string;
  TURN_HOSTS?: string;
  TURN_TTL_SECONDS?: string;
  TURN_PROVIDER_TIMEOUT_MS?: string;
  CLOUDFLARE_TURN_KEY_ID?: string;
  CLOUDFLARE_TURN_API_TOKEN?: string;
  CLOUDFLARE_TURN_API_URL?: string;
}

export interface TurnConfig {
  providers: IceServerProvider[];
  ttlSeconds: number;
  stun: IceServer[];
}

function positiveInteger(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

const PROVIDER_NAMES: readonly ProviderName[] = ["coturn", "cloudflare"];

function configuredProviders(env: TurnEnv, stun: IceServer[]): Map<ProviderName, IceServerProvider> {
  const providers = new Map<ProviderName, IceServerProvider>();
  if (env.TURN_SECRET || env.TURN_HOSTS) {
    providers.set("coturn", coturnProvider({ secret: env.TURN_SECRET ?? "", hosts: parseTurnHosts(env.TURN_HOSTS ?? ""), stun }));
  }
  if (env.CLOUDFLARE_TURN_KEY_ID || env.CLOUDFLARE_TURN_API_TOKEN) {
    providers.set(
      "cloudflare",
      cloudflareTurnProvider({
        keyId: env.CLOUDFLARE_TURN_KEY_ID ?? "",
        apiToken: env.CLOUDFLARE_TURN_API_TOKEN ?? "",
        apiUrl: env.CLOUDFLARE_TURN_API_URL,
        timeoutMs: positiveInteger("TURN_PROVIDER_TIMEOUT_MS", env.TURN_PROVIDER_TIMEOUT_MS, DEFAULT_PROVIDER_TIMEOUT_MS),
      }),
    );
  }
  return providers;
}

/** Reads and checks the TURN settings; a half-configured provider is an error, not a silent STUN fallback. */
export function turnConfig(env: TurnEnv, stun: IceServer[]): TurnConfig {
  const available = configuredProviders(env, stun);
  const order = env.TURN_PROVIDERS
    ? env.TURN_PROVIDERS.split(",")
        .map((name) => name.trim())
        .filter(Boolean)
    : PROVIDER_NAMES.filter((name) => available.has(name));
  const providers = order.map((name) => {
    const provider = available.get(name as ProviderName);
    if (!provider) throw new Error(`TURN_PROVIDERS names "${name}", which is not configured (known: ${PROVIDER_NAMES.join(", ")})`);
    return provider;
  });
  const ttlSeconds = positiveInteger("TURN_TTL_SECONDS", env.TURN_TTL_SECONDS, DEFAULT_TURN_TTL_SECONDS);
  return { providers, ttlSeconds, stun };
}

export interface IssueRequest {
  /** Session id or `acct.<account id>`: shows up in TURN logs, ties the credential to its owner. */
  subject: string;
  /** Unix seconds the credential must not outlive (the requester's token expiry). */
  notAfter?: number;
  /** Unix seconds; default the current time. */
  now?: number;
}

/** `log` receives one line per provider that failed; it never contains a secret. */
export async function issueIceServers(
  config: TurnConfig,
  request: IssueRequest,
  log: (line: string) => void = console.warn,
): Promise<IssuedIceServers> {
  const now = request.now ?? Math.floor(Date.now() / 1000);
  const allowed = request.notAfter === undefined ? config.ttlSeconds : request.notAfter - now;
  const ttlSeconds = Math.min(config.ttlSeconds, allowed);
  if (config.providers.length > 0 && ttlSeconds < MIN_TURN_TTL_SECONDS) {
    log(`ice servers: ${ttlSeconds} s left on the requester's token, too short for TURN; STUN only`);
    return { iceServers: config.stun, provider: "stun" };
  }
  for (const [index, provider] of config.providers.entries()) {
    try {
      return await provider.issue({ subject: request.subject, ttlSeconds, now });
    } catch (error) {
      const reason = error instanceof ProviderError ? error.message : `${provider.name}: unexpected failure`;
      const next = config.providers[index + 1]?.name ?? "STUN only";
      log(`ice servers: ${reason}; falling back to ${next}`);
    }
  }
  return { iceServers: config.stun, provider: "stun" };
}
