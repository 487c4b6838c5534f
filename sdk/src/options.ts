/** The Client's options: their defaults, and the checks made once, when a Client is made. */
import { ModelName } from "../../protocol/common.ts";
import { parse } from "../../protocol/schema.ts";
import { sdkError } from "./errors.ts";
import type { RTCPeerConnectionConstructor } from "./peer-link.ts";
import { jitteredBackoff, type ReconnectPolicy } from "./reconnect-policy.ts";
import type { WebSocketConstructor } from "./signaling-socket.ts";

export type TokenSource = string | (() => string | Promise<string>);

/** The token to use now: the string, or what the function gives (TOKEN_SOURCE_FAILED if it throws or gives none). */
export async function readToken(source: TokenSource | undefined): Promise<string> {
  if (typeof source === "string") return source;
  let token: unknown;
  try {
    token = await source?.();
  } catch (error) {
    throw sdkError("TOKEN_SOURCE_FAILED", { recoverable: true, message: `The token function threw: ${String(error)}` });
  }
  if (typeof token !== "string" || token.length === 0) throw sdkError("TOKEN_SOURCE_FAILED", { recoverable: true });
  return token;
}

export interface ClientOptions {
  /** The gateway, e.g. "https://gateway.example.com". */
  apiUrl: string;
  modelName: string;
  /** Default: globalThis.WebSocket (browsers, Node ≥ 22). */
  WebSocket?: WebSocketConstructor;
  /** Default: globalThis.RTCPeerConnection. `null`, or none available: sessions, commands and messages only. */
  RTCPeerConnection?: RTCPeerConnectionConstructor | null;
  fetch?: typeof fetch;
  /** When to retry after a drop. Default: jittered exponential backoff within the grace window. */
  reconnectPolicy?: ReconnectPolicy;
  /** The grace window assumed when the gateway has not said (its default is 30 s). */
  graceMs?: number;
  /** Keep-alive ping period of the signaling socket. Default 10 s; 0 disables. */
  keepAliveMs?: number;
  /** statsUpdate period. Default 1 s; 0 disables. */
  statsIntervalMs?: number;
  /**
   * Relay-only ICE (`iceTransportPolicy: "relay"`): media always goes through the TURN servers the gateway hands
   * out. For networks that need it, and to test TURN. Default false.
   */
  forceRelay?: boolean;
}

export type ResolvedOptions = ReturnType<typeof resolveOptions>;

/** Defaults filled in; a bad URL or model name, or no WebSocket at all, is a TypeError now rather than a failure later. */
export function resolveOptions(options: ClientOptions) {
  if (typeof options?.apiUrl !== "string" || !/^https?:\/\/[^/]/.test(options.apiUrl)) {
    throw new TypeError("Client: apiUrl must be an http(s) URL");
  }
  const modelName = parse(ModelName, options.modelName);
  if (!modelName.ok) throw new TypeError(`Client: modelName ${modelName.error.problem}`);
  const WebSocketImpl = options.WebSocket ?? (globalThis.WebSocket as WebSocketConstructor | undefined);
  if (!WebSocketImpl) throw new TypeError("Client: no WebSocket implementation; pass options.WebSocket");
  const RTCPeerConnectionImpl =
    options.RTCPeerConnection === null
      ? undefined
      : (options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: RTCPeerConnectionConstructor }).RTCPeerConnection);
  return {
    apiUrl: options.apiUrl.replace(/\/+$/, ""),
    modelName: modelName.value,
    WebSocket: WebSocketImpl,
    RTCPeerConnection: RTCPeerConnectionImpl,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
    reconnectPolicy: options.reconnectPolicy ?? jitteredBackoff(),
    graceMs: options.graceMs ?? 30_000,
    keepAliveMs: options.keepAliveMs ?? 10_000,
    statsIntervalMs: options.statsIntervalMs ?? 1000,
    iceTransportPolicy: (options.forceRelay ? "relay" : "all") as RTCIceTransportPolicy,
  };
}
