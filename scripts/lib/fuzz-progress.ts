/**
 * Progress of `npm run fuzz`. Each fuzz target inside workerd (test/worker/fuzz-kit.ts Tally) prints a progress line
 * every few seconds through vitest's console; scripts/fuzz.ts takes those lines out of vitest's output and prints
 * one line for the whole run instead: frames done of those requested, the rate, and the time left.
 * Plain TypeScript: imported by the workerd tests and by the Node script alike.
 */

/** `fuzz progress: <target>: <done>/<planned> frames, <rate> frames/s` */
export function progressLine(target: string, done: number, planned: number, ratePerSecond: number): string {
  return `fuzz progress: ${target}: ${done}/${planned} frames, ${Math.round(ratePerSecond)} frames/s`;
}

const LINE = /^fuzz progress: (.+): (\d+)\/(\d+) frames/;

export function parseProgressLine(line: string): { target: string; done: number; planned: number } | undefined {
  const match = LINE.exec(line);
  return match ? { target: match[1]!, done: Number(match[2]), planned: Number(match[3]) } : undefined;
}

/** The whole run's progress: the latest count of every target, against the frames requested. */
export class FuzzProgress {
  readonly #requested: number;
  readonly #started: number;
  readonly #done = new Map<string, number>();

  constructor(requested: number, started: number) {
    this.#requested = requested;
    this.#started = started;
  }

  /** Takes a progress line; false for any other line. */
  take(line: string): boolean {
    const parsed = parseProgressLine(line);
    if (parsed) this.#done.set(parsed.target, parsed.done);
    return parsed !== undefined;
  }

  get done(): number {
    return [...this.#done.values()].reduce((sum, count) => sum + count, 0);
  }

  /** e.g. `fuzz: 412000/2000000 frames (20.6 %), 1150 frames/s, about 23 min left` */
  summary(now: number): string {
    const done = this.done;
    const seconds = Math.max((now - this.#started) / 1000, 0.001);
    const rate = done / seconds;
    const percent = ((100 * done) / this.#requested).toFixed(1);
    const left = done >= this.#requested ? "finishing" : rate > 0 ? `about ${duration((this.#requested - done) / rate)} left` : "rate not known yet";
    return `fuzz: ${done}/${this.#requested} frames (${percent} %), ${Math.round(rate)} frames/s, ${left}`;
  }
}

function duration(seconds: number): string {
  if (seconds < 90) return `${Math.ceil(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
