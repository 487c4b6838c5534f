/**
 * ICE servers handed to clients and runtimes: short-lived TURN credentials from the configured providers
 * (src/turn/), with STUN from `STUN_URLS` alongside, or STUN only when no TURN provider is configured or all failed.
 *
 * `STUN_URLS` unset means the default STUN server; set but empty means no STUN server at all: peers then gather
 * host candidates only (plus relay candidates when TURN is configured), which is all two peers on one machine or
 * one LAN need, and works offline (`npm start`, tests).
 */
import type { IceServer } from "../protocol/common.ts";
import { DEFAULT_STUN_URLS } from "./config.ts";
import { issueIceServers, turnConfig, type IssueRequest, type TurnConfig, type TurnEnv } from "./turn/issue.ts";
import type { IssuedIceServers } from "./turn/provider.ts";

export type IceServersEnv = TurnEnv & { STUN_URLS?: string };

export function stunServers(env: { STUN_URLS?: string }): IceServer[] {
  const urls = (env.STUN_URLS ?? DEFAULT_STUN_URLS)
    .split(",")
    .map((url) => url.trim())
    .filter(Boolean);
  return urls.length > 0 ? [{ urls }] : [];
}

/** Settings read once per env object (one per isolate in production), not on every request. */
const configs = new WeakMap<IceServersEnv, TurnConfig>();

function configFor(env: IceServersEnv): TurnConfig {
  let config = configs.get(env);
  if (!config) {
    config = turnConfig(env, stunServers(env));
    configs.set(env, config);
  }
  return config;
}

/** ICE servers for one requester (a session, an account); TURN credentials are tied to `request.subject`. */
export function iceServersFor(env: IceServersEnv, request: IssueRequest): Promise<IssuedIceServers> {
  return issueIceServers(configFor(env), request);
}

/** Whether any TURN provider is configured: only then is issuing worth counting against the account's rate. */
export function issuesTurn(env: IceServersEnv): boolean {
  return configFor(env).providers.length > 0;
}

/** The official client's shape (`GET …/transport/webrtc/ice_servers`): `uris` and `credentials`. */
export function asReactorIceServers(servers: IceServer[]): { uris: string[]; credentials?: { username: string; password: string } }[] {
  return servers.map(({ urls, username, credential }) => ({
    uris: urls,
    ...(username !== undefined && credential !== undefined && { credentials: { username, password: credential } }),
  }));
}
