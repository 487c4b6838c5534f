/**
 * `node runtime/main.ts --gateway <url> --token <rt_…> --model demo --slots <n>`: runs the runtime agent with a
 * built-in model until Ctrl-C / SIGTERM, which releases its sessions and stops every encoder before exiting.
 */
import { parseArgs } from "node:util";
import { RuntimeAgent } from "./agent.ts";
import { chooseFfmpeg, type FfmpegChoice } from "./demo/ffmpeg.ts";
import { demoModel } from "./demo/model.ts";
import { consoleLog, errorText, type LogLevel } from "./log.ts";

/** `REACTOR_LOG_PREFIX=` (empty) when a supervisor labels the agent's lines itself. */
const LOG_PREFIX = process.env.REACTOR_LOG_PREFIX ?? "runtime";
import type { AnyModel } from "./model.ts";

const MODELS: Record<string, (options: { spareEncoders: number; ffmpeg: FfmpegChoice }) => AnyModel> = { demo: (options) => demoModel(options) };

const HELP = `Run a GPU runtime agent: connects to the gateway, registers a model, serves its sessions.

Usage: node runtime/main.ts --gateway <url> --token <rt_…> [options]

Options:
  --gateway <url>       The gateway's base URL (env REACTOR_GATEWAY_URL; default http://127.0.0.1:8787).
  --token <rt_…>        A runtime token, one of the gateway's RUNTIME_TOKENS (env REACTOR_RUNTIME_TOKEN).
  --model <name>        The model to serve: ${Object.keys(MODELS).join(", ")} (default demo).
  --slots <n>           Sessions served at once (default 1).
  --spare-encoders <n>  demo: encoders kept running ahead of sessions, for a faster first frame (default 0).
  --ffmpeg <path>       demo: run this ffmpeg (a path, or a name on PATH such as "ffmpeg") instead of the one
                        installed from npm (@ffmpeg-installer/ffmpeg); env REACTOR_FFMPEG. It needs libvpx and
                        drawtext.
  --runtime-id <id>     Keep the same id across restarts (default: host name and a random suffix).
  --stun <urls>         Comma-separated STUN/TURN URLs for the runtime's own ICE gathering (default none).
  --werift-as-is        Leave werift's connection internals alone (runtime/peer.ts's tuneTransports): for
                        comparison, or should a werift upgrade change what the adjustments rely on.
  --log-level <level>   debug, info, warn or error (default info).
  -h, --help            Show this help.`;

interface CliOptions {
  gatewayUrl: string;
  token: string;
  model: string;
  slots: number;
  spareEncoders: number;
  ffmpeg: FfmpegChoice;
  runtimeId?: string;
  stun: string[];
  tuneWerift: boolean;
  logLevel: LogLevel;
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      gateway: { type: "string" },
      token: { type: "string" },
      model: { type: "string", default: "demo" },
      slots: { type: "string", default: "1" },
      "spare-encoders": { type: "string", default: "0" },
      ffmpeg: { type: "string" },
      "runtime-id": { type: "string" },
      stun: { type: "string" },
      "werift-as-is": { type: "boolean", default: false },
      "log-level": { type: "string", default: "info" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const token = values.token ?? env.REACTOR_RUNTIME_TOKEN;
  if (!token) throw new Error("a runtime token is required: --token rt_… or REACTOR_RUNTIME_TOKEN");
  if (!Object.hasOwn(MODELS, values.model)) throw new Error(`unknown model "${values.model}" (built in: ${Object.keys(MODELS).join(", ")})`);
  const slots = Number(values.slots);
  if (!Number.isInteger(slots) || slots < 0 || slots > 1024) throw new Error(`--slots must be an integer from 0 to 1024, got "${values.slots}"`);
  const spareEncoders = Number(values["spare-encoders"]);
  if (!Number.isInteger(spareEncoders) || spareEncoders < 0 || spareEncoders > 16)
    throw new Error(`--spare-encoders must be an integer from 0 to 16, got "${values["spare-encoders"]}"`);
  const logLevel = values["log-level"];
  if (!["debug", "info", "warn", "error"].includes(logLevel)) throw new Error(`--log-level must be debug, info, warn or error`);
  return {
    gatewayUrl: values.gateway ?? env.REACTOR_GATEWAY_URL ?? "http://127.0.0.1:8787",
    token,
    model: values.model,
    slots,
    spareEncoders,
    // The packaged ffmpeg unless one is asked for; an empty value is not a request.
    ffmpeg: values.ffmpeg
      ? chooseFfmpeg(values.ffmpeg, "--ffmpeg")
      : env.REACTOR_FFMPEG
        ? chooseFfmpeg(env.REACTOR_FFMPEG, "REACTOR_FFMPEG")
        : chooseFfmpeg(),
    runtimeId: values["runtime-id"],
    stun: (values.stun ?? "")
      .split(",")
      .map((url) => url.trim())
      .filter(Boolean),
    tuneWerift: !values["werift-as-is"],
    logLevel: logLevel as LogLevel,
  };
}

async function main(): Promise<number> {
  let options: CliOptions | undefined;
  try {
    options = parseCli(process.argv.slice(2), process.env);
  } catch (error) {
    console.error(`error: ${errorText(error)}\n\n${HELP}`);
    return 2;
  }
  if (!options) {
    console.log(HELP);
    return 0;
  }
  const agent = new RuntimeAgent({
    gatewayUrl: options.gatewayUrl,
    token: options.token,
    model: MODELS[options.model]!({ spareEncoders: options.spareEncoders, ffmpeg: options.ffmpeg }),
    slots: options.slots,
    runtimeId: options.runtimeId,
    log: consoleLog(options.logLevel, LOG_PREFIX),
    webrtc: { ...(options.stun.length > 0 && { iceServers: [{ urls: options.stun }] }), tuneWerift: options.tuneWerift },
  });
  let stopping: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    console.error(`[runtime] ${signal}: releasing sessions and stopping`);
    stopping = agent.stop().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await agent.start();
  } catch (error) {
    console.error(`[runtime] error: ${errorText(error)}`);
    return 1;
  }
  console.log(
    `${LOG_PREFIX ? `[${LOG_PREFIX}] ` : ""}serving model ${options.model} with ${options.slots} slot(s) at ${options.gatewayUrl} as ${agent.runtimeId}`,
  );
  await new Promise(() => undefined); // until a signal
  return 0;
}

if (import.meta.main) process.exitCode = await main();
