import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { generateSigningKey } from "./src/auth/generate-signing-key.ts";

export default defineConfig(async () => {
  const migrations = await readD1Migrations("migrations");
  const signingKey = await generateSigningKey();
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            JWT_SIGNING_KEYS: JSON.stringify({ keys: [signingKey] }),
            ADMIN_TOKEN: "test-admin-token",
            TEST_MIGRATIONS: migrations,
          },
        },
      }),
    ],
    test: {
      include: ["test/worker/**/*.test.ts"],
      setupFiles: ["test/worker/apply-migrations.ts"],
    },
  };
});
