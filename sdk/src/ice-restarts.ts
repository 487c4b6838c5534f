/**
 * New peer connection generations on the same session, asked for by the app (restartIce), by an interrupted link
 * or by a network change. At most one per interval: one asked for sooner waits out the rest of it. A network change
 * restarts only if the current generation's path is gone: one that still carries media is kept (a new generation
 * would cost a renegotiation and a gap in the video for nothing).
 */
import type { Media } from "./media.ts";

export interface IceRestartsOptions {
  intervalMs: number;
  /** The session's media now (a new session gets a new one). */
  media: () => Media;
  /** Whether a restart can be negotiated now (live, socket open); if not, recovery starts a new generation anyway. */
  canRestart: () => boolean;
}

export class IceRestarts {
  readonly #options: IceRestartsOptions;
  #last = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** A network change is being looked into (browsers fire `online` several times at once). */
  #checkingPath = false;

  constructor(options: IceRestartsOptions) {
    this.#options = options;
  }

  /** Restarts now, or once the interval since the last restart has passed. */
  request(): void {
    this.cancel();
    const wait = this.#last + this.#options.intervalMs - Date.now();
    if (wait > 0) {
      this.#timer = setTimeout(() => this.request(), wait);
      return;
    }
    if (this.#options.canRestart()) this.#restart(this.#options.media());
  }

  /** After a network change: restarts at once (not throttled) if the current generation's path is gone. */
  checkPath(): void {
    if (this.#checkingPath) return;
    this.#checkingPath = true;
    const media = this.#options.media();
    void media
      .pathLost()
      .then((lost) => {
        if (!lost || media !== this.#options.media() || !this.#options.canRestart()) return;
        this.cancel(); // now rather than when a throttled restart would have come
        this.#restart(media);
      })
      .finally(() => (this.#checkingPath = false));
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #restart(media: Media): void {
    if (media.restart()) this.#last = Date.now();
  }
}
