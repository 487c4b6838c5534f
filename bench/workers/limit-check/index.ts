/**
 * A bench-only Worker (see bench/suites/limit-check.ts): the gateway itself, and under `/unlimited/…` the very same
 * app with the account limit check answered in-process instead of by the account's AccountLimits object. The two
 * differ only by the check, so timing POST /sessions on both gives its cost. Never deployed.
 *
 * Worker code built from the gateway's own sources, so it imports src/ (only the Worker, its Durable Objects, these
 * bench Workers and test/worker may).
 */
import { createApp } from "../../../src/app.ts";
import { limitDefaults } from "../../../src/config.ts";
import { ok } from "../../../protocol/result.ts";
import type { LimitDecision } from "../../../src/objects.ts";

export { AccountLimits, ModelPool, SessionRelay } from "../../../worker.ts";

const app = createApp();
const UNLIMITED = "/unlimited";

/** The env with ACCOUNT_LIMITS replaced by an in-process stand-in that allows everything at once (no object, no I/O). */
function withoutLimitCheck(env: Env): Env {
  const allowed: LimitDecision = ok(limitDefaults(env));
  const allowAll = { acquire: async () => allowed, recordMint: async () => allowed, release: async () => {} };
  const namespace = { getByName: () => allowAll };
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
