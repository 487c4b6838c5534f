/**
 * The worker project's bindings are wrangler.toml's vars plus the ones vitest.config.ts sets, and nothing from the
 * checkout's local files: `npm start` writes a `.dev.vars` (with DEV_API_KEY) next to wrangler.toml, and wrangler
 * would hand it to these tests as secrets if they used that config directly. test/node/test-isolation.test.ts runs
 * this file in a copy of the project whose `.dev.vars` is poisoned.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

const bindings = env as unknown as Record<string, unknown>;

describe("the worker tests' bindings", () => {
  it("have no DEV_API_KEY (the tests run as a deployed gateway) and nothing from a .dev.vars or .env", () => {
    expect(bindings.DEV_API_KEY).toBeUndefined();
    expect(Object.keys(bindings).filter((name) => name.startsWith("POISON_"))).toEqual([]);
  });

  it("take the secrets vitest.config.ts sets, and wrangler.toml's vars", () => {
    expect(bindings.ADMIN_TOKEN).toBe("test-admin-token");
    expect(bindings.TOKEN_ISSUER).toBe("reactor-gateway");
  });
});
