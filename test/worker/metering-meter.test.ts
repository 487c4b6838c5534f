/** The meter's arithmetic (durable-objects/session/meter.ts): segments and idle time from transitions and commands. */
import { describe, expect, it } from "vitest";
import { meterCommand, meterTransition, newMeter, openSegmentAt } from "../../durable-objects/session/meter.ts";

const SPAN = 60_000;
const native = { idleSpanMs: SPAN, seesCommands: true };
const official = { idleSpanMs: SPAN, seesCommands: false };

describe("segments", () => {
  it("opens on entering ACTIVE or RECONNECTING, closes on leaving, numbers from 1; unbilled states make none", () => {
    const meter = newMeter();
    expect(meterTransition(meter, "CREATED", "WAITING", 0, native)).toBeNull();
    expect(meterTransition(meter, "WAITING", "ACTIVE", 10_000, native)).toBeNull();
    expect(meterTransition(meter, "ACTIVE", "RECONNECTING", 40_000, native)).toMatchObject({
      segmentNo: 1,
      state: "ACTIVE",
      startedAt: 10_000,
      endedAt: 40_000,
    });
    expect(meterTransition(meter, "RECONNECTING", "INACTIVE", 70_000, native)).toMatchObject({
      segmentNo: 2,
      state: "RECONNECTING",
      startedAt: 40_000,
      endedAt: 70_000,
      idleMs: 0,
    });
    expect(meterTransition(meter, "INACTIVE", "WAITING", 80_000, native)).toBeNull();
    expect(meterTransition(meter, "WAITING", "ACTIVE", 90_000, native)).toBeNull();
    expect(meterTransition(meter, "ACTIVE", "CLOSED", 95_000, native)).toMatchObject({ segmentNo: 3, endedAt: 95_000 });
    expect(meter.open).toBeNull();
  });

  it("a segment never ends before it started (an end dated at an earlier deadline)", () => {
    const meter = newMeter();
    meterTransition(meter, "WAITING", "ACTIVE", 10_000, native);
    expect(meterTransition(meter, "ACTIVE", "CLOSED", 5_000, native)).toMatchObject({ startedAt: 10_000, endedAt: 10_000, idleMs: 0 });
  });

  it("the open segment can be read up to now without closing it", () => {
    const meter = newMeter();
    meterTransition(meter, "WAITING", "ACTIVE", 0, native);
    expect(openSegmentAt(meter, 100_000)).toMatchObject({ segmentNo: 1, endedAt: 100_000, idleMs: 40_000 });
    expect(meter.open).toMatchObject({ idleMs: 0, countedTo: 0 });
  });
});

describe("idle time", () => {
  it("counts ACTIVE time past the idle span since the later of the last command and becoming ready", () => {
    const meter = newMeter();
    meterCommand(meter, 0, SPAN); // while waiting: no effect once ready later
    meterTransition(meter, "WAITING", "ACTIVE", 100_000, native); // idle from 160 s
    meterCommand(meter, 150_000, SPAN); // idle from 210 s
    meterCommand(meter, 300_000, SPAN); // 90 s idle so far; idle from 360 s
    expect(meterTransition(meter, "ACTIVE", "CLOSED", 400_000, native)).toMatchObject({ idleMs: 90_000 + 40_000 });
  });

  it("resuming counts as activity, and RECONNECTING time is never idle", () => {
    const meter = newMeter();
    meterTransition(meter, "WAITING", "ACTIVE", 0, native);
    expect(meterTransition(meter, "ACTIVE", "RECONNECTING", 100_000, native)).toMatchObject({ idleMs: 40_000 });
    expect(meterTransition(meter, "RECONNECTING", "ACTIVE", 125_000, native)).toMatchObject({ idleMs: 0 });
    expect(meterTransition(meter, "ACTIVE", "CLOSED", 175_000, native)).toMatchObject({ idleMs: 0 });
  });

  it("is not measured when the gateway cannot see the client's commands", () => {
    const meter = newMeter();
    meterTransition(meter, "WAITING", "ACTIVE", 0, official);
    expect(meterTransition(meter, "ACTIVE", "CLOSED", 1_000_000, official)).toMatchObject({ idleMs: 0 });
  });
});
