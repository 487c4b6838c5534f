/** The page's elements (index.html) and the small functions that draw into them. No state lives here. */
import type { ClientStatus, LinkStats, LogKind, SessionFacts } from "./driver.ts";
import { DEFAULT_MODEL, describeModel, type ModelsResult, type ModelSummary } from "./models.ts";
import type { VideoFigures } from "./video-meter.ts";

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`index.html has no <${type.name}> #${id}`);
  return found;
}

export type Mode = "native" | "official";

export function bindView() {
  return {
    modeInputs: [...document.querySelectorAll<HTMLInputElement>('input[name="mode"]')],
    notice: element("notice", HTMLDivElement),
    noticeText: element("notice-text", HTMLParagraphElement),
    noticeClose: element("notice-close", HTMLButtonElement),
    tokenStatus: element("token-status", HTMLParagraphElement),
    tokenForm: element("token-form", HTMLFormElement),
    tokenInput: element("token-input", HTMLInputElement),
    model: element("model", HTMLSelectElement),
    modelStatus: element("model-status", HTMLElement),
    connect: element("connect", HTMLButtonElement),
    disconnect: element("disconnect", HTMLButtonElement),
    drop: element("drop", HTMLButtonElement),
    status: element("status", HTMLElement),
    sessionState: element("session-state", HTMLElement),
    sessionId: element("session-id", HTMLElement),
    queuePosition: element("queue-position", HTMLElement),
    grace: element("grace", HTMLElement),
    video: element("video", HTMLVideoElement),
    videoPlaceholder: element("video-placeholder", HTMLParagraphElement),
    liveBadge: element("live-badge", HTMLElement),
    promptForm: element("prompt-form", HTMLFormElement),
    prompt: element("prompt", HTMLInputElement),
    upload: element("upload", HTMLInputElement),
    uploadNote: element("upload-note", HTMLElement),
    rtt: element("stat-rtt", HTMLElement),
    candidate: element("stat-candidate", HTMLElement),
    fps: element("stat-fps", HTMLElement),
    bitrate: element("stat-bitrate", HTMLElement),
    resolution: element("stat-resolution", HTMLElement),
    frames: element("stat-frames", HTMLElement),
    log: element("log", HTMLOListElement),
  };
}

export type View = ReturnType<typeof bindView>;

const DASH = "—";
const MAX_LOG_LINES = 100;

export function selectedMode(view: View): Mode {
  return view.modeInputs.find((input) => input.checked)?.value === "official" ? "official" : "native";
}

export type NoticeKind = "info" | "error";

/**
 * Shows a banner above everything: instructions (`info`) or what went wrong (`error`, with a bold `title`);
 * `undefined` hides it. Text may hold `code`.
 */
export function showNotice(view: View, text: string | undefined, kind: NoticeKind = "info", title?: string): void {
  view.notice.hidden = text === undefined;
  view.notice.dataset.kind = kind;
  const heading = title === undefined ? [] : [Object.assign(document.createElement("strong"), { textContent: title })];
  view.noticeText.replaceChildren(...(text === undefined ? [] : [...heading, ...withCode(text)]));
}

/** Text with `backquoted` parts as <code> elements (built as nodes: nothing is parsed as HTML). */
function withCode(text: string): Node[] {
  return text.split("`").map((part, index) => {
    if (index % 2 === 0) return document.createTextNode(part);
    const code = document.createElement("code");
    code.textContent = part;
    return code;
  });
}

/** Which controls are usable in each client status. */
const CONTROLS: Record<ClientStatus, { connect: boolean; disconnect: boolean; drop: boolean; choose: boolean }> = {
  disconnected: { connect: true, disconnect: false, drop: false, choose: true },
  connecting: { connect: false, disconnect: true, drop: false, choose: false },
  waiting: { connect: false, disconnect: true, drop: false, choose: false },
  ready: { connect: false, disconnect: true, drop: true, choose: false },
};

export function renderControls(view: View, status: ClientStatus, options: { haveToken: boolean; promptWhileWaiting: boolean }): void {
  const allowed = CONTROLS[status];
  view.connect.disabled = !allowed.connect || !options.haveToken;
  view.disconnect.disabled = !allowed.disconnect;
  view.drop.disabled = !allowed.drop;
  view.model.disabled = !allowed.choose;
  for (const input of view.modeInputs) input.disabled = !allowed.choose;
  const canPrompt = status === "ready" || (options.promptWhileWaiting && status !== "disconnected");
  view.prompt.disabled = !canPrompt;
  for (const button of view.promptForm.querySelectorAll("button")) button.disabled = !canPrompt;
  view.upload.disabled = status !== "ready";
}

/** The upload's state next to the file picker: progress while it goes out, then what became of it. */
export function renderUpload(view: View, text: string): void {
  view.uploadNote.textContent = text;
}

export function renderStatus(view: View, status: ClientStatus): void {
  view.status.textContent = status;
  view.status.dataset.status = status;
}

export function renderSessionId(view: View, id: string | undefined): void {
  view.sessionId.textContent = id ?? DASH;
}

export function renderSessionFacts(view: View, facts: SessionFacts): void {
  view.sessionState.textContent = facts.state ?? DASH;
  view.queuePosition.textContent = facts.queuePosition === undefined ? DASH : String(facts.queuePosition);
  renderGrace(view, facts.graceDeadline);
}

/** Seconds left before a RECONNECTING session closes; called every half second while there is a deadline. */
export function renderGrace(view: View, deadline: number | undefined): void {
  view.grace.textContent = deadline === undefined ? DASH : `${Math.max(0, Math.ceil((deadline - Date.now()) / 1000))} s left to reconnect`;
}

export function renderModels(view: View, result: ModelsResult): void {
  if (!result.ok) {
    view.modelStatus.textContent = `Models unavailable: ${result.error}`;
    return;
  }
  view.modelStatus.textContent = result.value.length === 0 ? "No runtime is registered yet: a session waits in the queue until one is." : "";
  renderModelOptions(view, result.value);
}

function renderModelOptions(view: View, models: ModelSummary[]): void {
  const chosen = view.model.value || DEFAULT_MODEL;
  const options = models.map((model) => new Option(describeModel(model), model.name));
  // The chosen model stays listed even when no runtime serves it right now: a session on it waits in the queue.
  if (!models.some((model) => model.name === chosen)) options.unshift(new Option(`${chosen} — no runtime`, chosen));
  view.model.replaceChildren(...options);
  view.model.value = chosen;
}

/** What the video area says while there is no picture. */
const PLACEHOLDER: Record<ClientStatus, string> = {
  disconnected: "Press Connect to start a session",
  connecting: "Connecting…",
  waiting: "Waiting for a GPU…",
  ready: "Waiting for video…",
};

export function renderStats(view: View, link: LinkStats, video: VideoFigures, status: ClientStatus): void {
  view.rtt.textContent = link.rttMs === undefined ? DASH : `${Math.round(link.rttMs)} ms`;
  view.candidate.textContent = link.candidateType ?? DASH;
  const fps = link.fps ?? video.fps;
  view.fps.textContent = fps === undefined ? DASH : `${Math.round(fps)} fps`;
  view.bitrate.textContent = link.bitrateKbps === undefined ? DASH : `${Math.round(link.bitrateKbps)} kbit/s`;
  view.resolution.textContent = video.width > 0 ? `${video.width}×${video.height}` : DASH;
  view.frames.textContent = String(video.framesShown);
  const picture = video.width > 0 && status !== "disconnected";
  view.videoPlaceholder.hidden = picture;
  view.videoPlaceholder.textContent = PLACEHOLDER[status];
  view.liveBadge.hidden = !(picture && status === "ready");
}

export function log(view: View, kind: LogKind, text: string): void {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, text);
  view.log.prepend(item);
  while (view.log.children.length > MAX_LOG_LINES) view.log.lastElementChild?.remove();
}
