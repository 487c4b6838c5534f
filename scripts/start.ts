/**
 * `npm start`: the gateway, the demo page and a GPU runtime agent serving the demo model, in one command.
 *   1. make sure .dev.vars holds local secrets (created with fresh ones if missing);
 *   2. apply D1 migrations to the local database;
 *   3. seed DEV_API_KEY as an active key of account `dev`;
 *   4. build the demo page's assets (public/build/);
 *   5. run `wrangler dev` on 127.0.0.1:$PORT under a small supervisor, wait for /health;
 *   6. run the runtime agent (runtime/main.ts, model `demo`), wait until GET /v1/models lists it;
 *   7. print the demo page's URL and how to use the API.
 * Ctrl-C (or SIGTERM) stops every child process (the agent's ffmpeg included) and exits. If the agent crashes, the
 * gateway stays up and the agent is restarted (restart-policy.ts: jittered backoff, given up after 5 quick crashes
 * in a row); if the gateway exits, everything stops.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { ensureApiKey } from "../lib/api-keys.ts";
import { importKeySet } from "../lib/signing-keys.ts";
import { parseJwkSet } from "../protocol/signing-keys.ts";
import { buildDemoAssets, stageDemoSite } from "./lib/build-assets.ts";
import { checkDevApiKey, DEFAULT_DEV_API_KEY, ensureDevVars, type DevVars } from "./lib/dev-vars.ts";
import { portAvailable, waitForHealthy } from "./lib/http.ts";
import { withLocalDb } from "./lib/local-d1.ts";
import { waitForModel } from "./lib/local-gateway.ts";
import { DEFAULT_STATE_DIR, DEV_VARS_FILE, PROJECT_ROOT } from "./lib/paths.ts";
import { RestartPolicy } from "./lib/restart-policy.ts";
import { prefixedOutput, Supervisor, type ChildExit, type ChildSpec } from "./lib/supervisor.ts";
import { temporaryIsolatedConfig } from "./lib/wrangler-config.ts";
import { applyMigrations, wranglerCommand, wranglerDevArgs, wranglerEnv } from "./lib/wrangler.ts";

const DEMO_MODEL = "demo";
const DEFAULT_SLOTS = 2;
const MAX_SLOTS = 64;
/** One encoder kept warm: the demo's first frame in ~0.2 s instead of ~0.6 s, for ~15 % of a core while idle. */
const DEFAULT_SPARE_ENCODERS = 1;
const MAX_SPARE_ENCODERS = 16;
const DEV_ACCOUNT = "dev";
const RUNTIME_MAIN = path.join(PROJECT_ROOT, "runtime", "main.ts");

const HELP = `Run the gateway locally with the demo page and a runtime agent serving the demo model.

Usage: npm start [-- options]

Options:
  --port <n>           Port on 127.0.0.1 (default: env PORT, else 8787).
  --slots <n>          Sessions the runtime agent serves at once (default ${DEFAULT_SLOTS}, at most ${MAX_SLOTS}).
  --no-runtime         Do not start the runtime agent (connect your own to the gateway).
  --spare-encoders <n> Encoders the agent keeps running ahead of sessions, for a fast first frame (default
                       ${DEFAULT_SPARE_ENCODERS}: about 15 % of a core while idle; 0 turns it off).
  --ffmpeg <path>      The ffmpeg the demo model runs (a path, or "ffmpeg" for the one on PATH); default the
                       static build installed from npm (@ffmpeg-installer/ffmpeg). Env REACTOR_FFMPEG too.
  --stun-urls <list>   STUN servers for clients and the runtime agent, comma-separated (default: none, so peers
                       use host candidates only: works offline and between peers on this machine or LAN).
  --state-dir <dir>    Local D1 / Durable Object state (wrangler's --persist-to; default .wrangler/state).
  --dev-vars <file>    Secrets file (default .dev.vars; created with fresh secrets if missing).
  --assets-dir <dir>   Build and serve the demo page from a copy of public/ in <dir>, leaving public/build/ alone
                       (default: public/ itself).
  -h, --help           Show this help.

Environment:
  PORT                 As --port.
  REACTOR_FFMPEG       As --ffmpeg.
  DEV_API_KEY          The API key to seed for account dev (overrides .dev.vars; default ${DEFAULT_DEV_API_KEY}).`;

interface StartOptions {
  port: number;
  stateDir: string;
  devVarsFile: string;
  /** null: build into public/build/ and serve public/. */
  assetsDir: string | null;
  /** null: no runtime agent. */
  slots: number | null;
  spareEncoders: number;
  /** Another ffmpeg than the packaged one, as asked for. */
  ffmpeg: string | undefined;
  stunUrls: string;
}

function parseOptions(argv: string[]): StartOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      slots: { type: "string" },
      runtime: { type: "boolean", default: true },
      "spare-encoders": { type: "string" },
      ffmpeg: { type: "string" },
      "stun-urls": { type: "string", default: "" },
      "state-dir": { type: "string" },
      "dev-vars": { type: "string" },
      "assets-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowNegative: true,
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const port = integerOption("port", values.port ?? process.env.PORT ?? "8787", 1, 65535);
  const slots = integerOption("slots", values.slots ?? String(DEFAULT_SLOTS), 1, MAX_SLOTS);
  const spareEncoders = integerOption("spare-encoders", values["spare-encoders"] ?? String(DEFAULT_SPARE_ENCODERS), 0, MAX_SPARE_ENCODERS);
  for (const agentOption of ["slots", "spare-encoders", "ffmpeg"] as const) {
    if (!values.runtime && values[agentOption] !== undefined) throw new Error(`--${agentOption} is for the runtime agent; drop it or --no-runtime`);
  }
  // `npm start` runs in the project directory; relative paths mean relative to where the user typed the command.
  const base = process.env.INIT_CWD ?? process.cwd();
  return {
    port,
    slots: values.runtime ? slots : null,
    spareEncoders,
    ffmpeg: values.ffmpeg,
    stunUrls: values["stun-urls"],
    stateDir: values["state-dir"] ? path.resolve(base, values["state-dir"]) : DEFAULT_STATE_DIR,
    devVarsFile: values["dev-vars"] ? path.resolve(base, values["dev-vars"]) : DEV_VARS_FILE,
    assetsDir: values["assets-dir"] ? path.resolve(base, values["assets-dir"]) : null,
  };
}

function integerOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw new Error(`invalid ${name} "${text}" (an integer from ${min} to ${max})`);
  return value;
}

/** Paths inside the project relative to it, others absolute. */
function displayPath(file: string): string {
  const relative = path.relative(PROJECT_ROOT, file);
  return relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
}

function banner(url: string, devApiKey: string, options: StartOptions, devVarsPath: string): string {
  const rule = "─".repeat(78);
  const runtime =
    options.slots === null
      ? [
          `    No runtime agent (--no-runtime). Connect one (its token is RUNTIME_TOKENS in ${displayPath(devVarsPath)}):`,
          `      REACTOR_RUNTIME_TOKEN=rt_… node runtime/main.ts --gateway ${url} --model ${DEMO_MODEL} --slots ${DEFAULT_SLOTS}`,
        ]
      : [
          `    Model "${DEMO_MODEL}" on a local runtime agent with ${options.slots} slot${options.slots === 1 ? "" : "s"} (restarted if it crashes).`,
          options.spareEncoders > 0
            ? `    ${options.spareEncoders} spare encoder${options.spareEncoders === 1 ? "" : "s"} kept running for a fast first frame: ~${15 * options.spareEncoders} % of a core while idle (--spare-encoders 0 turns ${options.spareEncoders === 1 ? "it" : "them"} off).`
            : "    No spare encoder (--spare-encoders 0): each session starts its own, its first frame ~0.4 s later.",
        ];
  return [
    rule,
    `  Demo page:  ${url}/`,
    ...runtime,
    "",
    `  Reactor gateway running at ${url}`,
    "    Mint a client token with the dev API key (local use only):",
    `      curl -X POST ${url}/tokens -H "Reactor-API-Key: ${devApiKey}"`,
    `    or, from this machine only:  curl -X POST ${url}/dev/token`,
    `    Models with a runtime:       curl ${url}/v1/models -H "Authorization: Bearer <jwt>"`,
    `    API reference (OpenAPI):     ${url}/openapi.json`,
    `    Health:                      ${url}/health`,
    `    ICE servers:                 ${options.stunUrls || "none: host candidates only (--stun-urls to add STUN)"}`,
    "    API keys:                    npm run keys -- --help",
    "    Stop:                        Ctrl-C",
    rule,
  ].join("\n");
}

async function start(options: StartOptions): Promise<void> {
  const url = `http://127.0.0.1:${options.port}`;
  const supervisor = new Supervisor({
    name: "start",
    output: prefixedOutput(["start", "gateway", "runtime"]),
    onUnexpectedExit: (exit) => {
      if (exit.name === "runtime" && exit.gaveUp) {
        // The gateway is fine: keep it, for the sessions it holds and for an agent started by hand.
        supervisor.log(
          `the runtime agent stopped unexpectedly (${howItEnded(exit)}); not restarting it: ${exit.gaveUp}. The gateway stays up ` +
            `at ${url}; restart npm start, or run an agent yourself: REACTOR_RUNTIME_TOKEN=<RUNTIME_TOKENS in .dev.vars> node runtime/main.ts --gateway ${url} --model ${DEMO_MODEL}`,
          "stderr",
        );
        return;
      }
      supervisor.log(`${exit.name} stopped unexpectedly (${howItEnded(exit)}); stopping everything.`, "stderr");
      void supervisor.stopAll().finally(() => process.exit(1));
    },
    onRestart: (exit, { delayMs, attempt }) => {
      supervisor.log(
        `the runtime agent stopped unexpectedly (${howItEnded(exit)}) after ${formatSeconds(exit.ranMs)}; restarting it in ` +
          `${formatSeconds(delayMs)} (restart ${attempt}). Its sessions end at the gateway (runtime_restarted) when it registers again.`,
        "stderr",
      );
    },
  });
  supervisor.exitOnSignals();
  try {
    await boot(options, supervisor);
  } catch (error) {
    supervisor.log(`error: ${error instanceof Error ? error.message : String(error)}`, "stderr");
    await supervisor.stopAll();
    process.exit(1);
  }
}

function howItEnded(exit: ChildExit): string {
  return exit.error ? exit.error.message : exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

const formatSeconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

async function boot(options: StartOptions, supervisor: Supervisor): Promise<void> {
  const url = `http://127.0.0.1:${options.port}`;
  if (!(await portAvailable(options.port))) {
    throw new Error(`port ${options.port} on 127.0.0.1 is in use (another npm start?); choose another with PORT=…`);
  }
  const say = (line: string) => supervisor.log(line);

  const { devVars, devApiKey } = await prepareSecrets(options, say);
  await prepareDatabase(options, devApiKey, say);

  if (options.assetsDir) {
    say(`building the demo page into a copy of public/ in ${displayPath(options.assetsDir)} …`);
    await stageDemoSite(options.assetsDir, { build: true });
  } else {
    say("building the demo page (public/build/) …");
    const { files } = await buildDemoAssets();
    say(`built ${files.map((file) => path.basename(file)).join(", ")}`);
  }

  await startGateway(options, supervisor, url, devVars, devApiKey);
  if (options.slots !== null) await startRuntime(supervisor, url, devVars, options);
  console.log(banner(url, devApiKey, options, devVars.path));
}

/** Step 1: the secrets file, and which dev API key to seed. */
async function prepareSecrets(options: StartOptions, say: (line: string) => void): Promise<{ devVars: DevVars; devApiKey: string }> {
  const envKey = process.env.DEV_API_KEY || undefined;
  if (envKey) checkDevApiKey(envKey, "DEV_API_KEY (environment)");
  const devVars = await ensureDevVars(options.devVarsFile, envKey);
  const relativeVars = displayPath(devVars.path);
  if (devVars.created) say(`created ${relativeVars} with a fresh signing key, admin token, runtime token and dev API key`);
  else if (devVars.added.length > 0) say(`added ${devVars.added.join(", ")} to ${relativeVars}`);
  else say(`using secrets from ${relativeVars}`);
  // The Worker's own parser and importer, so a bad key set is reported here rather than as a 500 on the first POST /tokens.
  await checkSigningKeys(devVars.values.JWT_SIGNING_KEYS).catch((error: Error) => {
    throw new Error(`${error.message} (in ${relativeVars}; \`npm run keys -- signing-key\` makes a key)`);
  });
  const devApiKey = envKey ?? devVars.values.DEV_API_KEY!;
  checkDevApiKey(devApiKey, `DEV_API_KEY in ${relativeVars}`);
  if (devApiKey === DEFAULT_DEV_API_KEY) {
    say(`warning: DEV_API_KEY is the documented default ${DEFAULT_DEV_API_KEY}; it is public, for local use only.`);
  }
  return { devVars, devApiKey };
}

/** Rejects with the Worker's message when JWT_SIGNING_KEYS would not load (src/auth/signing-keys.ts does the same). */
async function checkSigningKeys(source: string | undefined): Promise<void> {
  if (!source) throw new Error("JWT_SIGNING_KEYS is not set (see README: Configuration).");
  const jwks = parseJwkSet(source);
  if (!jwks.ok) throw new Error(jwks.error.message);
  await importKeySet(jwks.value);
}

/** Steps 2 and 3, both before wrangler dev opens the database. */
async function prepareDatabase(options: StartOptions, devApiKey: string, say: (line: string) => void): Promise<void> {
  const applied = await applyMigrations(options.stateDir);
  const where = `the local database (${displayPath(options.stateDir)})`;
  say(applied.length > 0 ? `applied ${applied.join(", ")} to ${where}` : `${where} is up to date`);
  const seeded = await withLocalDb(options.stateDir, (db) => ensureApiKey(db, DEV_ACCOUNT, devApiKey, "dev"), {
    migrate: false,
  });
  say(seeded ? `seeded DEV_API_KEY for account ${DEV_ACCOUNT}` : `DEV_API_KEY is already a key of account ${DEV_ACCOUNT}`);
}

/** Step 5. STUN_URLS is always passed: empty (the default here) means no ICE servers, so an offline laptop works. */
async function startGateway(options: StartOptions, supervisor: Supervisor, url: string, devVars: DevVars, devApiKey: string): Promise<void> {
  const vars: Record<string, string> = { STUN_URLS: options.stunUrls };
  if (devApiKey !== devVars.values.DEV_API_KEY) vars.DEV_API_KEY = devApiKey;
  // wrangler.toml copied where no .dev.vars sits beside it: wrangler's types check then counts no secrets, as
  // `npm run typecheck` does (scripts/lib/wrangler-config.ts); the secrets still come from --env-file.
  const configPath = await temporaryIsolatedConfig({ assetsDirectory: options.assetsDir ?? undefined });
  const { command, args } = wranglerCommand(
    wranglerDevArgs({ port: options.port, stateDir: options.stateDir, envFile: devVars.path, vars, configPath }),
  );
  const gateway = supervisor.start({ name: "gateway", command, args, cwd: PROJECT_ROOT, env: wranglerEnv() });
  supervisor.log(`starting wrangler dev on ${url} …`);
  await waitForHealthy(`${url}/health`, { gaveUp: gateway.exited });
}

/**
 * Step 6: the agent gets the first RUNTIME_TOKENS entry through its environment, not its (world-readable) argv, and
 * gathers its own candidates with the same STUN servers as the clients. Its runtime id is the same across its
 * restarts, so a restarted agent's registration ends the sessions its previous process held at once (the gateway
 * reads an id that comes back without them as a restart) instead of leaving them to the 30 s grace.
 */
async function startRuntime(supervisor: Supervisor, url: string, devVars: DevVars, options: StartOptions): Promise<void> {
  const token = (devVars.values.RUNTIME_TOKENS ?? "").split(",")[0]!.trim();
  const slots = options.slots!;
  const spec: ChildSpec = {
    name: "runtime",
    command: process.execPath,
    args: [
      RUNTIME_MAIN,
      "--gateway",
      url,
      "--model",
      DEMO_MODEL,
      "--slots",
      String(slots),
      "--runtime-id",
      `npm-start-${options.port}`,
      "--spare-encoders",
      String(options.spareEncoders),
      ...(options.ffmpeg ? ["--ffmpeg", options.ffmpeg] : []),
      ...(options.stunUrls ? ["--stun", options.stunUrls] : []),
    ],
    cwd: PROJECT_ROOT,
    env: { ...process.env, REACTOR_RUNTIME_TOKEN: token, REACTOR_LOG_PREFIX: "" }, // the supervisor labels its lines
  };
  const agent = supervisor.start(spec);
  supervisor.log(`starting the runtime agent (model ${DEMO_MODEL}, ${slots} slots) …`);
  await waitForModel(url, DEMO_MODEL, { gaveUp: agent.exited });
  // Restarted only once it has started properly: one that cannot start at all (a wrong token) fails `npm start`.
  spec.restart = new RestartPolicy();
}

let options: StartOptions | undefined;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  console.error(`error: ${(error as Error).message}\nRun \`npm start -- --help\` for usage.`);
  process.exit(2);
}
if (options) await start(options);
