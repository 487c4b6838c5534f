/**
 * Client tokens for the page. Under `npm start` the gateway has a dev-only route, `POST /dev/token`, that mints one
 * for account "dev" (it exists only when DEV_API_KEY is set and the page is on a loopback address). Anywhere else the
 * user pastes a token minted by a backend with `POST /tokens`.
 */
import { TokenResponse } from "../../protocol/http.ts";
import { err, ok, type Result } from "../../protocol/result.ts";
import { parse } from "../../protocol/schema.ts";

/** Mint a new dev token this long before the current one expires. */
const REFRESH_MARGIN_MS = 60_000;

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export type TokenOrigin = "dev" | "pasted";

export interface CurrentToken {
  jwt: string;
  origin: TokenOrigin;
  /** Unix ms; undefined if a pasted token has no `exp`. */
  expiresAt?: number;
}

/** The outcome of asking the gateway for a dev token. */
export type DevTokenResult = Result<CurrentToken, { reason: "no-dev-route" | "failed"; detail: string }>;

export class TokenSource {
  #current: CurrentToken | undefined;
  readonly #gatewayUrl: string;

  constructor(gatewayUrl: string) {
    this.#gatewayUrl = gatewayUrl;
  }

  get current(): CurrentToken | undefined {
    return this.#current;
  }

  /** Tries the dev route; on success it becomes the source of every later token (refreshed before expiry). */
  async useDevRoute(): Promise<DevTokenResult> {
    const result = await fetchDevToken(this.#gatewayUrl);
    if (result.ok) this.#current = result.value;
    return result;
  }

  /** Takes a pasted token; throws a readable error if it cannot be one. */
  usePasted(text: string): CurrentToken {
    this.#current = parsePastedToken(text.trim());
    return this.#current;
  }

  /** A token valid for at least a minute, minting a new dev token when needed. */
  async get(): Promise<string> {
    const current = this.#current;
    if (!current) throw new Error("no token yet");
    if (current.origin === "dev" && current.expiresAt !== undefined && current.expiresAt - Date.now() < REFRESH_MARGIN_MS) {
      const result = await this.useDevRoute();
      if (!result.ok) throw new Error(`could not refresh the dev token: ${result.error.detail}`);
      return result.value.jwt;
    }
    return current.jwt;
  }
}

async function fetchDevToken(gatewayUrl: string): Promise<DevTokenResult> {
  let response: Response;
  try {
    response = await fetch(`${gatewayUrl}/dev/token`, { method: "POST" });
  } catch (error) {
    return err({ reason: "failed", detail: `the gateway did not answer (${(error as Error).message})` });
  }
  if (response.status === 404) return err({ reason: "no-dev-route", detail: "this gateway has no dev token route" });
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) return err({ reason: "failed", detail: `POST /dev/token answered ${response.status}${errorCode(body)}` });
  const parsed = parse(TokenResponse, body);
  if (!parsed.ok) return err({ reason: "failed", detail: `POST /dev/token answered with an unexpected body (${parsed.error.message})` });
  return ok({ jwt: parsed.value.jwt, origin: "dev" as const, expiresAt: parsed.value.expires_at * 1000 });
}

/** ` (CODE)` from the gateway's error body, or nothing. */
export function errorCode(body: unknown): string {
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  return typeof code === "string" ? ` (${code})` : "";
}

function parsePastedToken(text: string): CurrentToken {
  if (!JWT_SHAPE.test(text)) throw new Error("that is not a token: expected three base64url parts separated by dots (eyJ….eyJ….…)");
  let payload: unknown;
  try {
    payload = JSON.parse(atob(text.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    payload = undefined;
  }
  if (!payload || typeof payload !== "object") throw new Error("that is not a token: its middle part is not base64url-encoded JSON");
  const { exp } = payload as { exp?: unknown };
  const expiresAt = typeof exp === "number" ? exp * 1000 : undefined;
  if (expiresAt !== undefined && expiresAt <= Date.now()) throw new Error("that token has expired; mint a new one");
  return { jwt: text, origin: "pasted", expiresAt };
}
