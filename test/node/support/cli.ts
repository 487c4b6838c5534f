/** Running the project's scripts (`scripts/*.ts`) the way npm does, and capturing what they print. */
import { spawn } from "node:child_process";
import path from "node:path";
import { PROJECT_ROOT } from "../../../scripts/lib/paths.ts";

export interface ScriptResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Settings the scripts read from the environment: a test passes the ones it means, never the caller's. */
const SCRIPT_SETTINGS = ["GATEWAY_URL", "ADMIN_TOKEN", "DEV_API_KEY", "PORT"];

export function scriptEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const name of SCRIPT_SETTINGS) delete base[name];
  return { ...base, ...env };
}

/** `node scripts/<script> ...args` with the project's Node; resolves when it exits. */
export function runScript(script: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ScriptResult> {
  const child = spawn(process.execPath, [path.join(PROJECT_ROOT, "scripts", script), ...args], {
    cwd: PROJECT_ROOT,
    env: scriptEnv(options.env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const timeoutMs = options.timeoutMs ?? 90_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`scripts/${script} ${args.join(" ")} did not finish within ${timeoutMs / 1000} s\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
