/**
 * What the <video> element itself shows: frames presented (requestVideoFrameCallback) and the frame rate over the
 * last second. This is the page's ground truth that video is live, whichever client feeds the element.
 */
export interface VideoFigures {
  framesShown: number;
  /** Frames presented in the last second; undefined until a second has passed since the first. */
  fps: number | undefined;
  width: number;
  height: number;
}

export class VideoMeter {
  readonly #video: HTMLVideoElement;
  #framesShown = 0;
  /** performance.now() of each frame presented in the last second. */
  #recent: number[] = [];
  #firstAt: number | undefined;

  constructor(video: HTMLVideoElement) {
    this.#video = video;
    const onFrame = (now: DOMHighResTimeStamp) => {
      this.#framesShown++;
      this.#firstAt ??= now;
      this.#recent.push(now);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  figures(): VideoFigures {
    const now = performance.now();
    this.#recent = this.#recent.filter((at) => now - at <= 1000);
    const measured = this.#firstAt !== undefined && now - this.#firstAt >= 1000;
    return {
      framesShown: this.#framesShown,
      fps: measured ? this.#recent.length : undefined,
      width: this.#video.videoWidth,
      height: this.#video.videoHeight,
    };
  }
}
