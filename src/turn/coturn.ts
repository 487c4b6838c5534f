/**
 * Self-hosted TURN (coturn with `use-auth-secret`, the "TURN REST API" scheme): the username is
 * `<expiry unix seconds>:<subject>` and the password is base64(HMAC-SHA1(secret, username)). coturn recomputes the
 * HMAC with the same secret and refuses usernames whose expiry has passed. Nothing to call: issuing is local crypto.
 */
import type { IceServer } from "../../protocol/common.ts";
import type { IceServerProvider, IceServerRequest, IssuedIceServers } from "./provider.ts";

export interface TurnHost {
  host: string;
  /** TURN over UDP and TCP (default 3478). */
  port: number;
  /** TURN over TLS (`turns:`), default 443; 0 = not offered. */
  tlsPort: number;
}

const encoder = new TextEncoder();

/**
 * `TURN_HOSTS`: comma-separated `host`, `host:port` or `host:port:tlsPort` (IPv6 literals in brackets). One entry
 * per region; clients try them in order.
 */
export function parseTurnHosts(value: string): TurnHost[] {
  return value
    .split(",")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?::(\d{1,5}))?$/.exec(entry);
      if (!match) throw new Error(`TURN_HOSTS: cannot read "${entry}" (host, host:port or host:port:tlsPort)`);
      const port = match[2] === undefined ? 3478 : Number(match[2]);
      const tlsPort = match[3] === undefined ? 443 : Number(match[3]);
      if (port < 1 || port > 65535 || tlsPort > 65535) throw new Error(`TURN_HOSTS: port out of range in "${entry}"`);
      return { host: match[1]!, port, tlsPort };
    });
}

/** The order that works behind strict networks: UDP first, then TCP, then TLS on 443 (looks like HTTPS). */
export function turnUris({ host, port, tlsPort }: TurnHost): string[] {
  const uris = [`turn:${host}:${port}?transport=udp`, `turn:${host}:${port}?transport=tcp`];
  if (tlsPort > 0) uris.push(`turns:${host}:${tlsPort}?transport=tcp`);
  return uris;
}

/** Imported once per secret and isolate: importing costs as much as signing. */
const hmacKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
    hmacKeys.set(secret, key);
  }
  return key;
}

export async function turnPassword(secret: string, username: string): Promise<string> {
  const key = await hmacKey(secret);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(username)));
  let binary = "";
  for (const byte of mac) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function coturnProvider(options: { secret: string; hosts: TurnHost[]; stun: IceServer[] }): IceServerProvider {
  if (!options.secret) throw new Error("coturn provider: TURN_SECRET is empty");
  if (options.hosts.length === 0) throw new Error("coturn provider: TURN_HOSTS lists no host");
  return {
    name: "coturn",
    async issue({ subject, ttlSeconds, now }: IceServerRequest): Promise<IssuedIceServers> {
      const expiresAt = now + ttlSeconds;
      const username = `${expiresAt}:${subject}`;
      const credential = await turnPassword(options.secret, username);
      const turn = options.hosts.map((host) => ({ urls: turnUris(host), username, credential }));
      return { iceServers: [...options.stun, ...turn], expiresAt, provider: "coturn" };
    },
  };
}
