import { tmpdir } from "node:os";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig, defineProject } from "vitest/config";
import { generateSigningKey } from "./lib/signing-keys.ts";
import { sharedIsolatedConfig } from "./scripts/lib/wrangler-config.ts";

/**
 * Two test projects:
 *   - worker: runs inside workerd with real Durable Objects, D1 and R2 (the Workers Vitest integration);
 *   - node:   drives a real `wrangler dev` gateway, runtime agents and browsers from Node, on loopback ports (and,
 *             for the core real-network proofs, in network namespaces);
 *   - networks: the full real-network matrix, run by `npm run test:networks` only.
 */
export default defineConfig({
  test: {
    projects: [
      defineProject(async () => {
        const migrations = await readD1Migrations("migrations");
        const signingKey = await generateSigningKey();
        // wrangler.toml as JSON in a directory of its own: the plugin reads the `.dev.vars` (or `.env`) next to the
        // config, and the checkout's is `npm start`'s. The tests' bindings are exactly the ones below.
        const configPath = await sharedIsolatedConfig(tmpdir());
        return {
          plugins: [
            cloudflareTest({
              wrangler: { configPath },
              miniflare: {
                bindings: {
                  JWT_SIGNING_KEYS: JSON.stringify({ keys: [signingKey] }),
                  ADMIN_TOKEN: "test-admin-token",
                  RUNTIME_TOKENS: "rt_test_runtime_token_0123456789abcdef",
                  TEST_CLOCK: "1",
                  UPLOAD_SIGNING_SECRET: "worker-test-upload-signing-secret-0123456789",
                  UPLOAD_MAX_PER_SESSION: "10",
                  LONG_POLL_MS: "2000",
                  // coturn-style TURN (nothing listens there): every session issues real credentials.
                  TURN_SECRET: "worker-test-turn-secret",
                  TURN_HOSTS: "turn.worker.test",
                  TEST_MIGRATIONS: migrations,
                  // Protocol fuzzing (test/worker/fuzz-*.test.ts): frames per run and the seed (`npm run fuzz`); empty = defaults.
                  FUZZ_FRAMES: process.env.FUZZ_FRAMES ?? "",
                  FUZZ_SEED: process.env.FUZZ_SEED ?? "",
                  // The session chaos test (test/worker/session-chaos.test.ts): seeds per run and the first one; empty = CI's.
                  CHAOS_SEEDS: process.env.CHAOS_SEEDS ?? "",
                  CHAOS_SEED: process.env.CHAOS_SEED ?? "",
                },
              },
            }),
          ],
          test: {
            name: "worker",
            include: ["test/worker/**/*.test.ts"],
            // A few tests make dozens of requests in a row; on a loaded 2-core CI machine that takes seconds.
            testTimeout: 30_000,
            setupFiles: ["test/worker/apply-migrations.ts"],
            // Loopback servers the tests inside workerd talk to (they cannot listen themselves): the TURN API stand-in.
            globalSetup: ["test/node/support/cloudflare-turn-setup.ts"],
          },
        };
      }),
      {
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
      {
        // The real-network matrix (docs/networks.md): `npm run test:networks`, not part of `npm test`.
        test: {
          name: "networks",
          include: ["test/networks/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
