// test/worker runs inside workerd against the Worker's own modules, so it may import src/ (it is Worker code, like
// bench/workers); everything else imports only protocol/ and lib/.
declare namespace Cloudflare {
  interface Env {
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    /** Protocol fuzzing: frames per run and the seed (vitest.config.ts passes them from the environment). */
    FUZZ_FRAMES: string;
    FUZZ_SEED: string;
    CHAOS_SEEDS: string;
    CHAOS_SEED: string;
  }
}
