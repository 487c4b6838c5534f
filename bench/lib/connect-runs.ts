/**
 * Shared by the connect suites (official-connect, native-first-frame): summaries, the page probe's milestones
 * relative to the connect() call, and the barest WebRTC floor (bench/lib/instant-gateway.ts's `/raw` page).
 */
import type { Page } from "playwright-core";
import type { TestBrowser } from "../../tools/browser.ts";
import { fixed, median, quantile } from "../harness/stats.ts";
import { pageEvents, probePage } from "./timeline.ts";

export interface Summary {
  median: number;
  p90: number;
  min: number;
  max: number;
}

export function summary(values: number[]): Summary {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { median: Number.NaN, p90: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(finite), p90: quantile(finite, 0.9), min: Math.min(...finite), max: Math.max(...finite) };
}

/** "123 (140) 101–180": median, p90 in brackets, range. */
export function cell(s: Summary | undefined): string {
  if (!s || !Number.isFinite(s.median)) return "–";
  return `${fixed(s.median, 0)} (${fixed(s.p90, 0)}) ${fixed(s.min, 0)}–${fixed(s.max, 0)}`;
}

/** The marker the probe's milestones are measured from: push it in the same task that calls connect(). */
export const CONNECT_MARK = "connect()";

/** Opens a fresh page with the timeline probe (bench/lib/timeline.ts) installed. */
export async function probedPage(browser: TestBrowser, url: string): Promise<Page> {
  const page = await browser.newPage();
  await probePage(page);
  await page.goto(url);
  return page;
}

/** ms from the connect() mark to the first probe event named `what` (NaN if it never happened). */
export async function probeMilestones(page: Page, names: Record<string, string>): Promise<Record<string, number>> {
  const events = await pageEvents(page);
  const zero = events.find((event) => event.what === CONNECT_MARK)?.at ?? Number.NaN;
  return Object.fromEntries(
    Object.entries(names).map(([key, what]) => [key, (events.find((event) => event.what === what)?.at ?? Number.NaN) - zero]),
  );
}

export interface RawTimes {
  gathered?: number;
  answer: number;
  iceConnected: number;
  connected: number;
  channelOpen?: number;
  firstFrame: number;
}

/**
 * One bare RTCPeerConnection against the instant server's answerer: offered at once with trickled candidates (how
 * the native SDK offers), or once ICE gathering is complete with a data channel (how the official client does).
 */
export async function rawConnect(browser: TestBrowser, floorUrl: string, mode: { trickle: boolean; dataChannel: boolean }): Promise<RawTimes> {
  const page = await browser.newPage();
  try {
    await page.goto(`${floorUrl}/raw`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error("the bare peer connection got no video within 20 s")), 20_000)),
    );
    const connected = page.evaluate((m) => (window as unknown as { floor: { connect(m: unknown): Promise<RawTimes> } }).floor.connect(m), mode);
    return await Promise.race([connected, timeout]).finally(() => clearTimeout(timer));
  } finally {
    await page.close();
  }
}
