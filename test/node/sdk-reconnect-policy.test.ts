/**
 * The SDK's recovery timing on its own (sdk/src/reconnect-policy.ts): the default backoff policy, and one recovery
 * asking its policy. Recovery end to end, in a browser against a real gateway, is native-sdk.test.ts.
 */
import { describe, expect, it } from "vitest";
import { jitteredBackoff } from "../../sdk/src/index.ts";
import { Recovery, type ReconnectContext } from "../../sdk/src/reconnect-policy.ts";

describe("jitteredBackoff", () => {
  const policy = (random: number) => jitteredBackoff({ initialMs: 100, maxMs: 1000, jitter: 0.5, marginMs: 200, random: () => random });

  it("doubles up to the maximum, with jitter taking off up to half", () => {
    const delays = (random: number) =>
      [1, 2, 3, 4, 5, 6].map((attempt) => policy(random).nextDelayMs({ attempt, elapsedMs: 0, remainingMs: 60_000 }));
    expect(delays(0)).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(delays(0.999)).toEqual([50, 100, 200, 400, 500, 500]);
  });

  it("never waits past the grace deadline, and gives up when no time is left", () => {
    expect(policy(0).nextDelayMs({ attempt: 5, elapsedMs: 29_500, remainingMs: 500 })).toBe(300);
    expect(policy(0).nextDelayMs({ attempt: 1, elapsedMs: 29_800, remainingMs: 200 })).toBeNull();
    expect(policy(0).nextDelayMs({ attempt: 1, elapsedMs: 31_000, remainingMs: -1000 })).toBeNull();
  });
});

describe("Recovery", () => {
  it("asks its policy with the attempt, the time since the drop and the time left, and gives up when the policy does", async () => {
    const asked: ReconnectContext[] = [];
    const delays = [5, null];
    const policy = {
      nextDelayMs(context: ReconnectContext) {
        asked.push(context);
        return delays.shift() ?? null;
      },
    };
    const dropped = Date.now() - 1000;
    const recovery = new Recovery(dropped);
    let attempts = 0;
    expect(recovery.schedule(policy, dropped + 30_000, () => attempts++)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(attempts).toBe(1);
    expect(recovery.schedule(policy, dropped + 30_000, () => attempts++)).toBe(false);
    expect(asked.map((context) => context.attempt)).toEqual([1, 2]);
    expect(asked[0]!.elapsedMs).toBeGreaterThanOrEqual(1000);
    expect(asked[0]!.elapsedMs + asked[0]!.remainingMs).toBe(30_000);
  });

  it("cancel() stops the attempt it scheduled", async () => {
    const recovery = new Recovery();
    let attempts = 0;
    recovery.schedule({ nextDelayMs: () => 5 }, Date.now() + 30_000, () => attempts++);
    recovery.cancel();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(attempts).toBe(0);
  });
});
