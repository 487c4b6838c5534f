/** `npm run fuzz`'s progress (scripts/lib/fuzz-progress.ts): the targets' lines in, one line for the run out. */
import { describe, expect, it } from "vitest";
import { FuzzProgress, parseProgressLine, progressLine } from "../../scripts/lib/fuzz-progress.ts";

describe("progress lines", () => {
  it("round-trip: what a target prints inside workerd is what the script reads", () => {
    const line = progressLine("native signaling socket (ClientFrame)", 4200, 840000, 1234.4);
    expect(line).toBe("fuzz progress: native signaling socket (ClientFrame): 4200/840000 frames, 1234 frames/s");
    expect(parseProgressLine(line)).toEqual({ target: "native signaling socket (ClientFrame)", done: 4200, planned: 840000 });
  });

  it("other output is not a progress line", () => {
    for (const line of ["", "stdout | test/worker/fuzz-rest.test.ts", "fuzz (seed 1, FUZZ_FRAMES 1000):", "  fuzz progress: x: 1/2 frames"]) {
      expect(parseProgressLine(line)).toBeUndefined();
    }
  });
});

describe("FuzzProgress", () => {
  it("sums the latest count of every target against the frames requested, with the rate and the time left", () => {
    const progress = new FuzzProgress(2_000_000, 0);
    expect(progress.take("Test Files  1 passed")).toBe(false);
    expect(progress.take(progressLine("native", 100_000, 840_000, 0))).toBe(true);
    expect(progress.take(progressLine("rest", 50_000, 160_000, 0))).toBe(true);
    expect(progress.take(progressLine("native", 300_000, 840_000, 0))).toBe(true); // replaces native's 100,000
    expect(progress.done).toBe(350_000);
    // 350,000 frames in 100 s: 3,500 frames/s; 1,650,000 to go: 471 s, about 8 min.
    expect(progress.summary(100_000)).toBe("fuzz: 350000/2000000 frames (17.5 %), 3500 frames/s, about 8 min left");
  });

  it("says so before any frame and once every frame is done", () => {
    const progress = new FuzzProgress(1000, 0);
    expect(progress.summary(5000)).toBe("fuzz: 0/1000 frames (0.0 %), 0 frames/s, rate not known yet");
    progress.take(progressLine("a", 1000, 1000, 0));
    expect(progress.summary(10_000)).toBe("fuzz: 1000/1000 frames (100.0 %), 100 frames/s, finishing");
  });

  it("puts the time left in seconds, minutes or hours", () => {
    const progress = new FuzzProgress(10_000_000, 0);
    progress.take(progressLine("a", 1000, 10_000_000, 0));
    expect(progress.summary(1000)).toMatch(/about 2\.8 h left$/); // 1,000 frames/s, 9,999,000 to go
    const short = new FuzzProgress(2000, 0);
    short.take(progressLine("a", 1000, 2000, 0));
    expect(short.summary(10_000)).toMatch(/about 10 s left$/);
  });
});
