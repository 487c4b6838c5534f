/**
 * ICE servers handed to clients and runtimes. Today: STUN from `STUN_URLS` (comma-separated). TURN providers
 * plug in here.
 */
import { DEFAULT_STUN_URLS } from "./config.ts";
import type { IceServer } from "./protocol/common.ts";

export function iceServersFor(env: { STUN_URLS?: string }): IceServer[] {
  const urls = (env.STUN_URLS || DEFAULT_STUN_URLS)
    .split(",")
    .map((url) => url.trim())
    .filter(Boolean);
  return urls.length > 0 ? [{ urls }] : [];
}
