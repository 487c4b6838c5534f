/**
 * Chaos: commands and model messages through the native socket and the runtime's session socket while both sides
 * drop abruptly at random points, the command buffer overflows while the runtime is away, and the session is
 * restarted after its runtime releases it. Each run is a random script (fast-check, seeded); at its end both sides
 * must agree: every command ran once and in order or was reported dropped (never acknowledged), every message of
 * every run arrived once and in order (test/worker/chaos.ts).
 *
 * CI runs a few seeds (well under a minute); `npm run fuzz -- --chaos-seeds 200` runs more. CHAOS_SEED replays one.
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, it } from "vitest";
import { Chaos, type ChaosAction } from "./chaos.ts";
import { freshModel } from "./scripted.ts";

const SEEDS = Number(env.CHAOS_SEEDS) || 6;
const SEED = env.CHAOS_SEED ? Number(env.CHAOS_SEED) : Date.now() % 1_000_000;

const action: fc.Arbitrary<ChaosAction> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.record({
      kind: fc.constant("command" as const),
      policy: fc.constantFrom("buffer", "buffer", "buffer", "drop", "replace"),
      type: fc.constantFrom("set_prompt" as const, "set_mode" as const),
    }),
  },
  { weight: 25, arbitrary: fc.constant({ kind: "message" as const }) },
  { weight: 10, arbitrary: fc.constant({ kind: "pumpClient" as const }) },
  { weight: 10, arbitrary: fc.constant({ kind: "pumpRuntime" as const }) },
  { weight: 5, arbitrary: fc.constant({ kind: "dropClient" as const }) },
  { weight: 5, arbitrary: fc.constant({ kind: "reconnectClient" as const }) },
  { weight: 5, arbitrary: fc.constant({ kind: "dropRuntime" as const }) },
  { weight: 5, arbitrary: fc.constant({ kind: "reconnectRuntime" as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: "replaceClient" as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: "replaceRuntime" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "restart" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "overflow" as const }) },
);

describe("session chaos", () => {
  it(`${SEEDS} random scripts (seed ${SEED}): exactly once and in order, or reported dropped, at both ends`, {
    timeout: 60_000 + SEEDS * 20_000,
  }, async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 20, maxLength: 60 }), async (actions) => {
        const chaos = await Chaos.start(freshModel("chaos"));
        try {
          for (const step of actions) await chaos.run(step);
          await chaos.check();
        } catch (error) {
          throw new Error(`${String(error)}\nscript: ${chaos.log.join(" ")}`);
        }
        console.log(`chaos: run ${++run}/${SEEDS} ok: ${chaos.summary()}`);
      }),
      { seed: SEED, numRuns: SEEDS, endOnFailure: true },
    );
  });
});
