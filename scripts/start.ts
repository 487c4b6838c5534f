/**
 * `npm start`: everything needed to use the gateway locally, in one command.
 *   1. make sure .dev.vars holds local secrets (created with fresh ones if missing);
 *   2. apply D1 migrations to the local database;
 *   3. seed DEV_API_KEY as an active key of account `dev`;
 *   4. run `wrangler dev` on 127.0.0.1:$PORT under a small supervisor, wait for /health, print how to use it.
 * Ctrl-C (or SIGTERM) stops every child process and exits.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { ensureApiKey } from "../src/auth/api-keys.ts";
import { signingKeys } from "../src/auth/signing-keys.ts";
import { checkDevApiKey, DEFAULT_DEV_API_KEY, ensureDevVars } from "./lib/dev-vars.ts";
import { portAvailable, waitForHealthy } from "./lib/http.ts";
import { withLocalDb } from "./lib/local-d1.ts";
import { DEFAULT_STATE_DIR, DEV_VARS_FILE, PROJECT_ROOT } from "./lib/paths.ts";
import { prefixedOutput, Supervisor } from "./lib/supervisor.ts";
import { applyMigrations, wranglerCommand, wranglerDevArgs, wranglerEnv } from "./lib/wrangler.ts";

const HELP = `Run the gateway locally: secrets, migrations, a dev API key, and wrangler dev.

Usage: npm start [-- options]

Options:
  --port <n>           Port on 127.0.0.1 (default: env PORT, else 8787).
  --state-dir <dir>    Local D1 / Durable Object state (wrangler's --persist-to; default .wrangler/state).
  --dev-vars <file>    Secrets file (default .dev.vars; created with fresh secrets if missing).
  -h, --help           Show this help.

Environment:
  PORT                 As --port.
  DEV_API_KEY          The API key to seed for account dev (overrides .dev.vars; default ${DEFAULT_DEV_API_KEY}).`;

const DEV_ACCOUNT = "dev";

interface StartOptions {
  port: number;
  stateDir: string;
  devVarsFile: string;
}

function parseOptions(argv: string[]): StartOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      "state-dir": { type: "string" },
      "dev-vars": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return undefined;
  }
  const portText = values.port ?? process.env.PORT ?? "8787";
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port "${portText}"`);
  // `npm start` runs in the project directory; relative paths mean relative to where the user typed the command.
  const base = process.env.INIT_CWD ?? process.cwd();
  return {
    port,
    stateDir: values["state-dir"] ? path.resolve(base, values["state-dir"]) : DEFAULT_STATE_DIR,
    devVarsFile: values["dev-vars"] ? path.resolve(base, values["dev-vars"]) : DEV_VARS_FILE,
  };
}

/** Paths inside the project relative to it, others absolute. */
function displayPath(file: string): string {
  const relative = path.relative(PROJECT_ROOT, file);
  return relative.startsWith("..") || path.isAbsolute(relative) ? file : relative;
}

function banner(url: string, devApiKey: string): string {
  const rule = "─".repeat(78);
  return [
    rule,
    `  Reactor gateway running at ${url}`,
    "",
    "  Mint a client token with the dev API key (local use only):",
    `    curl -X POST ${url}/tokens -H "Reactor-API-Key: ${devApiKey}"`,
    "",
    `  API reference (OpenAPI):  ${url}/openapi.json`,
    `  Health:                   ${url}/health`,
    "  API keys:                 npm run keys -- --help",
    "  Stop:                     Ctrl-C",
    rule,
  ].join("\n");
}

async function start(options: StartOptions): Promise<void> {
  const supervisor = new Supervisor({
    name: "start",
    output: prefixedOutput(["start", "gateway"]),
    onUnexpectedExit: (exit) => {
      const how = exit.error ? exit.error.message : exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
      supervisor.log(`${exit.name} stopped unexpectedly (${how}); stopping everything.`, "stderr");
      void supervisor.stopAll().finally(() => process.exit(1));
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

async function boot(options: StartOptions, supervisor: Supervisor): Promise<void> {
  const url = `http://127.0.0.1:${options.port}`;
  const say = (line: string) => supervisor.log(line);
  if (!(await portAvailable(options.port))) {
    throw new Error(`port ${options.port} on 127.0.0.1 is in use (another npm start?); choose another with PORT=…`);
  }

  // 1. Secrets.
  const envKey = process.env.DEV_API_KEY || undefined;
  if (envKey) checkDevApiKey(envKey, "DEV_API_KEY (environment)");
  const devVars = await ensureDevVars(options.devVarsFile, envKey);
  const relativeVars = displayPath(devVars.path);
  if (devVars.created) say(`created ${relativeVars} with a fresh signing key, admin token, runtime token and dev API key`);
  else if (devVars.added.length > 0) say(`added ${devVars.added.join(", ")} to ${relativeVars}`);
  else say(`using secrets from ${relativeVars}`);
  // The Worker's own parser, so a bad key set is reported here rather than as a 500 on the first POST /tokens.
  await signingKeys({ JWT_SIGNING_KEYS: devVars.values.JWT_SIGNING_KEYS }).catch((error: Error) => {
    throw new Error(`${error.message} (in ${relativeVars}; \`npm run keys -- signing-key\` makes a key)`);
  });
  const devApiKey = envKey ?? devVars.values.DEV_API_KEY!;
  checkDevApiKey(devApiKey, `DEV_API_KEY in ${relativeVars}`);
  if (devApiKey === DEFAULT_DEV_API_KEY) {
    say(`warning: DEV_API_KEY is the documented default ${DEFAULT_DEV_API_KEY}; it is public, for local use only.`);
  }

  // 2. Migrations, 3. the dev key: both before wrangler dev opens the database.
  const applied = await applyMigrations(options.stateDir);
  const where = `the local database (${displayPath(options.stateDir)})`;
  say(applied.length > 0 ? `applied ${applied.join(", ")} to ${where}` : `${where} is up to date`);
  const seeded = await withLocalDb(options.stateDir, (db) => ensureApiKey(db, DEV_ACCOUNT, devApiKey, "dev"), {
    migrate: false,
  });
  say(seeded ? `seeded DEV_API_KEY for account ${DEV_ACCOUNT}` : `DEV_API_KEY is already a key of account ${DEV_ACCOUNT}`);

  // 4. The gateway.
  const overrides = devApiKey !== devVars.values.DEV_API_KEY ? { DEV_API_KEY: devApiKey } : undefined;
  const { command, args } = wranglerCommand(
    wranglerDevArgs({ port: options.port, stateDir: options.stateDir, envFile: devVars.path, vars: overrides }),
  );
  const gateway = supervisor.start({ name: "gateway", command, args, cwd: PROJECT_ROOT, env: wranglerEnv() });
  say(`starting wrangler dev on ${url} …`);
  await waitForHealthy(`${url}/health`, { gaveUp: gateway.exited });
  console.log(banner(url, devApiKey));
}

let options: StartOptions | undefined;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  console.error(`error: ${(error as Error).message}\nRun \`npm start -- --help\` for usage.`);
  process.exit(2);
}
if (options) await start(options);
