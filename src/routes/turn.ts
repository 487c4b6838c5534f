import type { Hono } from "hono";
import { TurnCredentialsResponse } from "../../protocol/http.ts";
import { route, type AppEnv } from "../http/route.ts";
import { iceServersFor, issuesTurn } from "../ice-servers.ts";
import { checkTurnRate } from "../limits/enforce.ts";

export function turnRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "post",
      path: "/v1/turn-credentials",
      tag: "TURN",
      summary:
        "Short-lived TURN credentials (standard RTCIceServer[]) for clients that only need TURN. Tied to the " +
        "account, never valid past the token's expiry; rate-limited per account.",
      auth: "bearer",
      responses: {
        200: { description: "ICE servers with TURN credentials (STUN only when no TURN provider answers).", schema: TurnCredentialsResponse },
      },
      errors: ["RATE_LIMITED"], // too many credentials issued for this account
    },
    async (c) => {
      const principal = c.get("principal");
      const subject = `acct.${principal.accountId}`;
      if (issuesTurn(c.env)) await checkTurnRate(c.env, principal.accountId, subject);
      const issued = await iceServersFor(c.env, { subject, notAfter: principal.expiresAt });
      return c.json(
        { ice_servers: issued.iceServers, ...(issued.expiresAt !== undefined && { expires_at: issued.expiresAt }), provider: issued.provider },
        200,
        { "Cache-Control": "no-store" },
      );
    },
  );
}
