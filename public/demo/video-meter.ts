/**
 * What the <video> element itself shows: frames presented (requestVideoFrameCallback) and the frame rate over a
 * window of the last two seconds. This is the page's ground truth that video is live, whichever client feeds the
 * element. `reset()` starts over (a new stream, or none): nothing of the previous stream is counted.
 */
export interface VideoFigures {
  framesShown: number;
  /** Frames presented per second over the window; undefined until the window holds a second of steady video. */
  fps: number | undefined;
  width: number;
  height: number;
}

/** Frames presented over this long make the frame rate. */
const WINDOW_MS = 2000;
/** The first frames of a stream come in a burst (a key frame, then what queued behind it): not counted. */
const SETTLE_MS = 500;
/** The window must span at least this much steady video before a rate is shown. */
const MIN_SPAN_MS = 1000;

export class VideoMeter {
  readonly #video: HTMLVideoElement;
  #framesShown = 0;
  /** performance.now() of each frame presented within the window. */
  #recent: number[] = [];
  /** When the current stream's first frame was presented. */
  #firstAt: number | undefined;

  constructor(video: HTMLVideoElement) {
    this.#video = video;
    const onFrame = (now: DOMHighResTimeStamp) => {
      this.#framesShown++;
      this.#firstAt ??= now;
      if (now - this.#firstAt >= SETTLE_MS) this.#recent.push(now);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  /** A new stream (or none): the rate starts over; `framesShown` is zeroed too when the session is over. */
  reset({ frames = false } = {}): void {
    this.#recent = [];
    this.#firstAt = undefined;
    if (frames) this.#framesShown = 0;
  }

  figures(): VideoFigures {
    const now = performance.now();
    this.#recent = this.#recent.filter((at) => now - at <= WINDOW_MS);
    const steadySince = this.#firstAt === undefined ? undefined : Math.max(this.#firstAt + SETTLE_MS, now - WINDOW_MS);
    const span = steadySince === undefined ? 0 : now - steadySince;
    return {
      framesShown: this.#framesShown,
      fps: span >= MIN_SPAN_MS ? (this.#recent.length * 1000) / span : undefined,
      width: this.#video.videoWidth,
      height: this.#video.videoHeight,
    };
  }
}
