/**
 * `node tether.ts <command> [args…]`: runs a command whose lifetime is tied to the process that started the tether.
 * The parent holds the tether's stdin open; when that pipe closes — the parent exited, however it died, SIGKILL
 * included — the tether stops its whole process group (SIGTERM, then SIGKILL), so no workerd outlives a killed test
 * runner or `npm start`. Otherwise it is transparent: output passes through, and it exits as the command did.
 * ManagedChild (supervisor.ts) starts every child through it, as the leader of the child's process group.
 */
import { spawn } from "node:child_process";
import { groupAlive } from "./process-group.ts";

const GRACE_MS = 10_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: node tether.ts <command> [args…]");
  process.exit(2);
}

// Our own group gets SIGTERM when we are stopped; the command reacts to it, and we follow the command.
process.on("SIGTERM", () => {});
process.on("SIGINT", () => {});

const child = spawn(command, args, { stdio: ["ignore", "inherit", "inherit"] });
let orphaned = false;

child.once("error", (error) => {
  console.error(`cannot run ${command}: ${error.message}`);
  process.exit(127);
});

child.once("exit", (code, signal) => {
  if (orphaned) return;
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal); // exit the way the command did
  }
  process.exit(code ?? 1);
});

async function stopOrphanedGroup(): Promise<void> {
  if (orphaned) return;
  orphaned = true;
  const group = process.pid; // we lead the group
  process.kill(-group, "SIGTERM");
  const deadline = Date.now() + GRACE_MS;
  while (groupAlive(group, process.pid) && Date.now() < deadline) await sleep(50);
  process.kill(-group, "SIGKILL"); // whatever is left, ourselves included
}

process.stdin.on("end", stopOrphanedGroup);
process.stdin.on("close", stopOrphanedGroup);
process.stdin.on("error", stopOrphanedGroup);
process.stdin.resume();
