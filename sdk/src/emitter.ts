/**
 * A tiny typed event emitter over a map of listener signatures (`{ statusChanged: (status) => void }`). Listeners
 * run in order; one that throws never stops the others nor the client's own bookkeeping.
 */
// biome-ignore lint/suspicious/noExplicitAny: the bound every listener signature must meet; `unknown[]` parameters would reject `(status: Status) => void`.
type AnyListener = (...args: any[]) => void;

export class Emitter<Events extends { [K in keyof Events]: AnyListener }> {
  readonly #listeners = new Map<keyof Events, Set<AnyListener>>();

  on<K extends keyof Events>(event: K, listener: Events[K]): void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
  }

  off<K extends keyof Events>(event: K, listener: Events[K]): void {
    this.#listeners.get(event)?.delete(listener);
  }

  emit<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        // Reported as an uncaught error, outside the client's own call stack.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
