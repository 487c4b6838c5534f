/**
 * A bench-only Worker (see bench/suites/limit-check.ts): the gateway itself, and under `/unlimited/…` the very same
 * app with the account limit check answered in-process instead of by the account's AccountLimits object. The two
 * differ only by the check, so timing POST /sessions on both gives its cost. Never deployed.
 */
import { createApp } from "../../../src/app.ts";
import { limitDefaults } from "../../../src/config.ts";
import type { LimitDecision } from "../../../durable-objects/limits/account-limits.ts";

export { AccountLimits, ModelPool, SessionRelay } from "../../../src/index.ts";

const app = createApp();
const UNLIMITED = "/unlimited";

/** The env with ACCOUNT_LIMITS replaced by an in-process stand-in that allows everything at once (no object, no I/O). */
function withoutLimitCheck(env: Env): Env {
  const allowed: LimitDecision = { ok: true, limits: limitDefaults(env as unknown as Record<string, unknown>) };
  const allowAll = { acquire: async () => allowed, recordMint: async () => allowed, release: async () => {} };
  const namespace = { idFromName: () => ({}), get: () => allowAll };
  return { ...env, ACCOUNT_LIMITS: namespace as unknown as Env["ACCOUNT_LIMITS"] };
}

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext) {
    const url = new URL(request.url);
    if (!url.pathname.startsWith(`${UNLIMITED}/`)) return app.fetch(request, env, ctx);
    url.pathname = url.pathname.slice(UNLIMITED.length);
    return app.fetch(new Request(url, request), withoutLimitCheck(env), ctx);
  },
} satisfies ExportedHandler<Env>;
