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
    status = next;
    if (next !== "ready") link = {}; // figures of a connection that is gone would mislead
    renderStatus(view, next);
    refreshControls();
    note("info", `status: ${next}`);
  },
  sessionId: (id) => renderSessionId(view, id),
  sessionFacts(next) {
    if (next.state !== facts.state || next.queuePosition !== facts.queuePosition) note("info", describeFacts(next));
    facts = next;
    renderSessionFacts(view, next);
  },
  video(stream) {
    view.video.srcObject = stream;
    view.video.play().catch(() => undefined); // autoplay of a muted stream is allowed; play() only nudges it
  },
  stats: (next) => (link = next),
  message: (data) => note(...describeMessage(data)),
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

/** A model message as a log line: `command_result` replies stand out, anything else is shown as JSON. */
function describeMessage(data: unknown): [LogKind, string] {
  const reply = data as { type?: unknown; command?: unknown; ok?: unknown; prompt?: unknown; error?: unknown; bytes?: unknown; sha256?: unknown } | null;
  if (reply?.type === "command_error") return ["error", `command_error ${JSON.stringify(data)}`.slice(0, 300)];
  if (reply?.type !== "command_result") return ["info", `message ${JSON.stringify(data)}`.slice(0, 300)];
  const outcome = reply.ok === true ? "ok" : `failed${reply.error === undefined ? "" : `: ${JSON.stringify(reply.error)}`}`;
  const prompt = typeof reply.prompt === "string" ? ` — prompt "${reply.prompt}"` : "";
  const file = typeof reply.sha256 === "string" ? ` — ${String(reply.bytes)} bytes, sha256 ${reply.sha256}` : "";
  return [reply.ok === true ? "reply" : "error", `command_result ${String(reply.command)} ${outcome}${prompt}${file}`];
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
    // Both clients report their own failures as `error` events (coded errors); log only what they could not.
    if (!isCodedError(error)) note("error", `connect failed: ${describeError(error)}`);
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
    result.reason === "no-dev-route"
      ? "No token: this gateway has no dev token route (it exists only under `npm start`, on 127.0.0.1). " +
          "Run `npm start` and open the address it prints, or paste a client token minted by your backend with `POST /tokens`."
      : `No token: ${result.detail}. Paste a client token minted with \`POST /tokens\` instead.`,
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
    showNotice(view, describeError(error));
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
setInterval(() => {
  renderStats(view, link, meter.figures());
  renderGrace(view, facts.graceDeadline);
}, REFRESH_MS);

refreshControls();
void setUpToken();
