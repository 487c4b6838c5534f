/**
 * Time as Durable Objects see it. In production this is `Date.now()`. Tests (env TEST_CLOCK = "1") may move it
 * forward with `advance()`; the offset is stored, so it survives eviction like every other piece of state.
 */
const OFFSET_KEY = "clock_offset_ms";

export class Clock {
  #offset: number;
  readonly #storage: DurableObjectStorage;
  readonly #adjustable: boolean;

  constructor(storage: DurableObjectStorage, env: { TEST_CLOCK?: string }) {
    this.#storage = storage;
    this.#adjustable = env.TEST_CLOCK === "1";
    this.#offset = this.#adjustable ? (storage.kv.get<number>(OFFSET_KEY) ?? 0) : 0;
  }

  now(): number {
    return Date.now() + this.#offset;
  }

  advance(ms: number): void {
    if (!this.#adjustable) throw new Error("the clock can only be moved in tests (TEST_CLOCK=1)");
    this.#offset += ms;
    this.#storage.kv.put(OFFSET_KEY, this.#offset);
  }
}
