/**
 * Limits: what the account may do and how much of it is in use (GET /v1/limits), and the operator's per-account
 * overrides (GET/PUT /admin/accounts/{account}/limits), stored in D1 over the platform defaults.
 */
import type { Hono } from "hono";
import { AccountLimitsRequest, AccountLimitsResponse, LimitsResponse, type LimitValues } from "../../protocol/usage.ts";
import { limitDefaults, type LimitSettings } from "../config.ts";
import { ApiError } from "../errors.ts";
import { route, type AppContext, type AppEnv } from "../http/route.ts";
import { applyOverrides, readOverrides, writeOverrides, type LimitOverrides } from "../limits/account-settings.ts";
import { accountLimits } from "../objects.ts";

const ACCOUNT = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const toWire = (limits: LimitSettings): LimitValues => ({
  concurrent_sessions: limits.concurrentSessions,
  session_creations_per_minute: limits.sessionCreationsPerMinute,
  account_session_creations_per_minute: limits.accountSessionCreationsPerMinute,
  token_mints_per_minute: limits.tokenMintsPerMinute,
  turn_credentials_per_minute: limits.turnCredentialsPerMinute,
  max_session_seconds: limits.maxSessionSeconds,
});

function fromWire(body: AccountLimitsRequest): LimitOverrides {
  const overrides: LimitOverrides = {};
  if (body.concurrent_sessions !== undefined) overrides.concurrentSessions = body.concurrent_sessions;
  if (body.session_creations_per_minute !== undefined) overrides.sessionCreationsPerMinute = body.session_creations_per_minute;
  if (body.account_session_creations_per_minute !== undefined) {
    overrides.accountSessionCreationsPerMinute = body.account_session_creations_per_minute;
  }
  if (body.token_mints_per_minute !== undefined) overrides.tokenMintsPerMinute = body.token_mints_per_minute;
  if (body.turn_credentials_per_minute !== undefined) overrides.turnCredentialsPerMinute = body.turn_credentials_per_minute;
  if (body.max_session_seconds !== undefined) overrides.maxSessionSeconds = body.max_session_seconds;
  return overrides;
}

function accountParam(c: AppContext): string {
  const account = c.req.param("account") ?? "";
  if (!ACCOUNT.test(account)) throw new ApiError("INVALID_REQUEST", "account: expected an account id such as acme.");
  return account;
}

function adminAnswer(c: AppContext, account: string, overrides: LimitOverrides) {
  const defaults = limitDefaults(c.env);
  return c.json({
    account,
    limits: toWire(applyOverrides(defaults, overrides)),
    overrides: {
      concurrent_sessions: overrides.concurrentSessions ?? null,
      session_creations_per_minute: overrides.sessionCreationsPerMinute ?? null,
      account_session_creations_per_minute: overrides.accountSessionCreationsPerMinute ?? null,
      token_mints_per_minute: overrides.tokenMintsPerMinute ?? null,
      turn_credentials_per_minute: overrides.turnCredentialsPerMinute ?? null,
      max_session_seconds: overrides.maxSessionSeconds ?? null,
    },
  });
}

export function limitRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/limits",
      tag: "Usage",
      summary: "The account's limits, the sessions holding a slot now, and the session creations of the last minute per model.",
      auth: "bearer",
      responses: { 200: { description: "Limits and current use.", schema: LimitsResponse } },
    },
    async (c) => {
      const accountId = c.get("principal").accountId;
      const status = await accountLimits(c.env, accountId).status(accountId);
      return c.json(
        {
          account: accountId,
          limits: toWire(status.limits),
          sessions_in_use: status.sessions.length,
          creations_last_minute: status.creations_last_minute,
        },
        200,
        { "Cache-Control": "no-store" },
      );
    },
  );

  const adminPath = "/admin/accounts/:account/limits";
  const answer = { description: "The account's limits in force, and its own overrides (null: the default).", schema: AccountLimitsResponse };

  route(
    app,
    {
      method: "get",
      path: adminPath,
      tag: "Admin",
      summary: "An account's limits and overrides.",
      auth: "admin",
      responses: { 200: answer },
      errors: ["INVALID_REQUEST"],
    },
    async (c) => {
      const account = accountParam(c);
      return adminAnswer(c, account, await readOverrides(c.env.DB, account));
    },
  );

  route(
    app,
    {
      method: "put",
      path: adminPath,
      tag: "Admin",
      summary: "Override an account's limits (fields left out keep their value; null restores the default). Applies at once.",
      auth: "admin",
      body: AccountLimitsRequest,
      responses: { 200: answer },
      errors: ["INVALID_REQUEST"],
    },
    async (c, body) => {
      const account = accountParam(c);
      const overrides = await writeOverrides(c.env.DB, account, fromWire(body), Date.now());
      // The account's limits object caches overrides for a minute; told now, the change applies to the next request.
      await accountLimits(c.env, account).reload();
      return adminAnswer(c, account, overrides);
    },
  );
}
