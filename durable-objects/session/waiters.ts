/**
 * Long-polling requests (GET /sessions/{id}, GET sdp_params) waiting for the session to change. In memory on
 * purpose: a waiter lives exactly as long as its request, and a request in flight keeps the object awake.
 */
export class Waiters {
  readonly #waiting = new Set<() => void>();

  /** Something changed: every waiter checks again whether it is done. */
  wake(): void {
    for (const wake of this.#waiting) wake();
    this.#waiting.clear();
  }

  /** Resolves once `done()` holds (checked after each wake) or `ms` have passed, whichever is first. */
  async until(done: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done() && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.#waiting.add(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
