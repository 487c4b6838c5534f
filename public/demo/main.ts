/**
 * The demo page: get a token, pick a model, connect with the native SDK or the official client, and watch the
 * session (status, queue, grace), the model's video, its replies and live stats. The page is served by the gateway
 * itself, so the API is this page's own origin.
 */
import {
  describeError,
  isCodedError,
  type ClientStatus,
  type Driver,
  type DriverEvents,
  type DriverFactory,
  type LinkStats,
  type LogKind,
  type SessionFacts,
} from "./driver.ts";
import { DEFAULT_MODEL, fetchModels, watchModels } from "./models.ts";
import { nativeDriver } from "./native.ts";
import { officialDriver } from "./official.ts";
import { TokenSource } from "./token.ts";
import { VideoMeter } from "./video-meter.ts";
import {
  bindView,
  log,
  renderControls,
  renderGrace,
  renderModels,
  renderSessionFacts,
  renderSessionId,
  renderStats,
  renderStatus,
  renderUpload,
  selectedMode,
  showNotice,
  type Mode,
} from "./view.ts";
import { bannerForError, bannerForMessage, describeMessage } from "./messages.ts";

const DRIVERS: Record<Mode, DriverFactory> = { native: nativeDriver, official: officialDriver };
const PROMPT_MAX_CHARS = 200; // the demo model's limit for set_prompt
const REFRESH_MS = 500;

const gatewayUrl = location.origin;
const view = bindView();
const tokens = new TokenSource(gatewayUrl);
const meter = new VideoMeter(view.video);

let driver: Driver | undefined;
let status: ClientStatus = "disconnected";
let link: LinkStats = {};
let facts: SessionFacts = {};
let stopWatchingModels: (() => void) | undefined;

const note = (kind: LogKind, text: string) => log(view, kind, text);

function refreshControls(): void {
  renderControls(view, status, {
    haveToken: tokens.current !== undefined,
    promptWhileWaiting: driver?.sendsWhileWaiting ?? false,
  });
}

const events: DriverEvents = {
  status(next) {
    const was = status;
    status = next;
    if (next !== "ready") link = {}; // figures of a connection that is gone would mislead
    if (next === "disconnected" && was !== "disconnected") clearVideo();
    renderStatus(view, next);
    refreshControls();
    refreshStats();
    note("info", `status: ${next}`);
  },
  sessionId: (id) => renderSessionId(view, id),
  sessionFacts(next) {
    if (next.state !== facts.state || next.queuePosition !== facts.queuePosition) note("info", describeFacts(next));
    facts = next;
    renderSessionFacts(view, next);
  },
  video(stream) {
    meter.reset(); // a new track: its frame rate is its own
    view.video.srcObject = stream;
    view.video.play().catch(() => undefined); // autoplay of a muted stream is allowed; play() only nudges it
  },
  stats: (next) => (link = next),
  message(data) {
    note(...describeMessage(data));
    const banner = bannerForMessage(data);
    if (banner) showNotice(view, banner.text, "error", banner.title);
  },
  error(error) {
    note("error", describeError(error));
    const banner = bannerForError(error);
    if (banner) showNotice(view, banner.text, "error", banner.title);
  },
  uploadProgress: (loaded, total) => renderUpload(view, `uploading… ${Math.floor((100 * loaded) / total)} %`),
  log: note,
};

/** `session RECONNECTING (client_lost), 30 s left to reconnect`: the gateway's view, as it changes. */
function describeFacts({ state, reason, queuePosition, graceDeadline }: SessionFacts): string {
  const parts = [`session ${state ?? "—"}${reason ? ` (${reason})` : ""}`];
  if (queuePosition !== undefined) parts.push(`queue position ${queuePosition}`);
  if (graceDeadline !== undefined) parts.push(`${Math.max(0, Math.round((graceDeadline - Date.now()) / 1000))} s left to reconnect`);
  return parts.join(", ");
}

/** No session any more: no picture (the placeholder, not a black frame) and no figures of the one that was. */
function clearVideo(): void {
  view.video.srcObject = null;
  meter.reset({ frames: true });
}

function refreshStats(): void {
  renderStats(view, link, meter.figures(), status);
}

async function connect(): Promise<void> {
  driver?.dispose();
  facts = {};
  renderSessionFacts(view, facts);
  view.connect.disabled = true; // until the client reports its status
  showNotice(view, undefined);
  const mode = selectedMode(view);
  const model = view.model.value || DEFAULT_MODEL;
  try {
    driver = await DRIVERS[mode]({ apiUrl: gatewayUrl, model, events });
    note("info", `connecting to model "${model}" with the ${mode} client`);
    await driver.connect(() => tokens.get());
  } catch (error) {
    // Both clients report their own failures as `error` events (coded errors); show only what they could not.
    if (!isCodedError(error)) {
      note("error", `connect failed: ${describeError(error)}`);
      showNotice(view, describeError(error), "error", "Could not connect");
    }
  } finally {
    refreshControls();
  }
}

async function run(action: string, work: (driver: Driver) => Promise<void>): Promise<void> {
  if (!driver) return;
  try {
    await work(driver);
  } catch (error) {
    note("error", `${action} failed: ${describeError(error)}`);
  }
}

function sendPrompt(event: SubmitEvent): void {
  event.preventDefault();
  const prompt = view.prompt.value.trim();
  if (prompt.length === 0 || prompt.length > PROMPT_MAX_CHARS || !driver) return;
  driver.sendPrompt(prompt);
  note("sent", `set_prompt "${prompt}"`);
  view.prompt.value = ""; // ready for the next one; the log keeps what was sent
}

/** Uploads the picked file and sends it to the model as `set_image`; the model answers with its size and SHA-256. */
async function sendImage(): Promise<void> {
  const file = view.upload.files?.[0];
  view.upload.value = ""; // the same file can be picked again
  if (!file || !driver) return;
  note("sent", `set_image "${file.name}" (${file.size} bytes)`);
  renderUpload(view, "uploading…");
  try {
    await driver.sendImage(file);
    renderUpload(view, `sent ${file.name}; the model answers with its size and SHA-256`);
  } catch (error) {
    renderUpload(view, "upload failed");
    note("error", `upload failed: ${describeError(error)}`);
    showNotice(view, describeError(error), "error", "The upload failed");
  }
}

async function setUpToken(): Promise<void> {
  const result = await tokens.useDevRoute();
  if (result.ok) {
    view.tokenStatus.textContent = 'Using a dev token for account "dev" (from POST /dev/token, renewed as it expires).';
    return tokenReady();
  }
  view.tokenForm.hidden = false;
  view.tokenStatus.textContent = "No token yet.";
  showNotice(
    view,
    result.error.reason === "no-dev-route"
      ? "No token: this gateway has no dev token route (it exists only under `npm start`, on 127.0.0.1). " +
          "Run `npm start` and open the address it prints, or paste a client token minted by your backend with `POST /tokens`."
      : `No token: ${result.error.detail}. Paste a client token minted with \`POST /tokens\` instead.`,
    result.error.reason === "no-dev-route" ? "info" : "error",
  );
}

function usePastedToken(event: SubmitEvent): void {
  event.preventDefault();
  try {
    const token = tokens.usePasted(view.tokenInput.value);
    const expiry = token.expiresAt === undefined ? "" : `, valid until ${new Date(token.expiresAt).toLocaleTimeString()}`;
    view.tokenStatus.textContent = `Using the pasted token${expiry}.`;
    showNotice(view, undefined);
    tokenReady();
  } catch (error) {
    showNotice(view, describeError(error), "error", "That token cannot be used");
  }
}

function tokenReady(): void {
  refreshControls();
  stopWatchingModels?.();
  stopWatchingModels = watchModels(
    async () => fetchModels(gatewayUrl, await tokens.get()),
    (result) => renderModels(view, result),
  );
}

view.connect.addEventListener("click", () => void connect());
view.disconnect.addEventListener("click", () => void run("disconnect", (d) => d.disconnect()));
view.drop.addEventListener("click", () => {
  note("info", "dropping the connection, as a network loss would…");
  void run("drop connection", (d) => d.dropConnection());
});
view.promptForm.addEventListener("submit", sendPrompt);
view.upload.addEventListener("change", () => void sendImage());
view.tokenForm.addEventListener("submit", usePastedToken);
view.noticeClose.addEventListener("click", () => showNotice(view, undefined));
setInterval(() => {
  refreshStats();
  renderGrace(view, facts.graceDeadline);
}, REFRESH_MS);

refreshControls();
void setUpToken();
