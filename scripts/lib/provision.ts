/**
 * The machine's side of the test suite: the Debian packages whose programs the tests drive for real. One list, one
 * check, used by `npm test` (its `pretest` step) and by `.ci/run`, so a missing program stops the run up front with
 * what to install, rather than failing (or being skipped) halfway through the suite.
 *
 * Everything else the tests need comes from npm (wrangler, workerd, Node 24, ffmpeg, the official client).
 */
import { spawn } from "node:child_process";

export interface DebianPackage {
  name: string;
  /** Why the tests need it: printed when it is missing. */
  why: string;
}

/** Add a package here (one line) and `npm test` / `.ci/run` install it, or say how to. */
export const DEBIAN_PACKAGES: readonly DebianPackage[] = [
  { name: "chromium", why: "the browser the end-to-end tests drive (playwright-core, /usr/bin/chromium)" },
  { name: "coturn", why: "the TURN server the relay tests run (turnserver)" },
  { name: "iproute2", why: "network namespaces and veth links of the real-network tests (ip)" },
  { name: "nftables", why: "the NAT routers and firewalls of the real-network tests (nft)" },
  { name: "ethtool", why: "turns off offloads on the real-network tests' emulated links" },
  { name: "python3", why: "the real-network tests' link emulator (delay, jitter, loss; the kernel here has no netem)" },
];

/** What to do about the packages, given which are missing and whether we may run apt-get. */
export type ProvisionPlan =
  | { action: "none" }
  | { action: "install"; packages: string[] }
  | { action: "refuse"; packages: string[]; message: string };

export function planProvisioning(required: readonly DebianPackage[], missing: ReadonlySet<string>, isRoot: boolean): ProvisionPlan {
  const absent = required.filter((item) => missing.has(item.name));
  if (absent.length === 0) return { action: "none" };
  const packages = absent.map((item) => item.name);
  if (isRoot) return { action: "install", packages };
  return { action: "refuse", packages, message: missingMessage(absent) };
}

/** The exact list and the command that installs it, for a user who is not root. */
export function missingMessage(absent: readonly DebianPackage[]): string {
  const names = absent.map((item) => item.name);
  return [
    `The tests need ${names.length === 1 ? "a Debian package" : "Debian packages"} that ${names.length === 1 ? "is" : "are"} not installed:`,
    ...absent.map((item) => `  ${item.name}: ${item.why}`),
    "Install them (as root), then run the tests again:",
    `  ${installCommandLine(names)}`,
  ].join("\n");
}

export function installCommandLine(packages: readonly string[]): string {
  return `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages.join(" ")}`;
}

/** Unattended apt: no prompts, no dialogs, only what was asked for. */
const APT_ENV = { DEBIAN_FRONTEND: "noninteractive" };
export const APT_UPDATE = ["apt-get", ["update", "-q"]] as const;
export const aptInstall = (packages: readonly string[]) => ["apt-get", ["install", "-y", "-q", "--no-install-recommends", ...packages]] as const;

/**
 * `dpkg-query` output (`${Package}\t${db:Status-Status}` per line) → the names not fully installed. A name
 * dpkg has never heard of prints no line at all; one removed but with its config files kept says "config-files".
 */
export function parseInstalled(wanted: readonly string[], output: string): Set<string> {
  const installed = new Set(
    output
      .split("\n")
      .map((line) => line.split("\t"))
      .filter(([, status]) => status?.trim() === "installed")
      .map(([name]) => name!.replace(/:.*$/, "")), // chromium:amd64 → chromium
  );
  return new Set(wanted.filter((name) => !installed.has(name)));
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export type RunCommand = (command: string, args: readonly string[], env?: Record<string, string>) => Promise<CommandResult>;

/** Runs a command, output collected (dpkg-query) — or passed through when `inherit` (apt-get's progress). */
export function runCommand(command: string, args: readonly string[], env: Record<string, string> = {}, inherit = false): Promise<CommandResult> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: inherit ? "inherit" : ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The names among `wanted` that dpkg does not list as installed. Throws when dpkg-query cannot run (not Debian). */
export async function missingPackages(wanted: readonly string[], run: RunCommand = runCommand): Promise<Set<string>> {
  let result: CommandResult;
  try {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own `${field}` format, passed literally.
    result = await run("dpkg-query", ["-W", "-f=${Package}\\t${db:Status-Status}\\n", ...wanted]);
  } catch (error) {
    throw new Error(
      `cannot check the Debian packages the tests need (${wanted.join(", ")}): dpkg-query did not run (${(error as Error).message}). ` +
        "The tests expect a Debian or Ubuntu machine with these packages installed.",
    );
  }
  // Exit code 1 with "no packages found matching" just means some are unknown: the output still lists the others.
  return parseInstalled(wanted, result.stdout);
}

export interface ProvisionOptions {
  packages?: readonly DebianPackage[];
  isRoot?: boolean;
  /** How dpkg-query and apt-get are run (tests pass a recorder; apt is never run by the test suite). */
  run?: RunCommand;
  log?: (line: string) => void;
}

/**
 * Makes sure every package is installed: nothing to do when they are (no apt call); apt-get update once, then one
 * install, when running as root; otherwise throws the list and the command. Throws too if apt-get fails or a package
 * is still missing afterwards.
 */
export async function provision(options: ProvisionOptions = {}): Promise<{ installed: string[] }> {
  const packages = options.packages ?? DEBIAN_PACKAGES;
  const run = options.run ?? ((command, args, env) => runCommand(command, args, env, true));
  const query: RunCommand = options.run ?? ((command, args, env) => runCommand(command, args, env));
  const log = options.log ?? ((line: string) => console.log(line));
  const names = packages.map((item) => item.name);

  const plan = planProvisioning(packages, await missingPackages(names, query), options.isRoot ?? process.getuid?.() === 0);
  if (plan.action === "none") return { installed: [] };
  if (plan.action === "refuse") throw new ProvisionError(plan.message);

  log(`installing Debian packages for the tests: ${plan.packages.join(" ")}`);
  for (const [command, args] of [APT_UPDATE, aptInstall(plan.packages)]) {
    const result = await run(command, args, APT_ENV);
    if (result.code !== 0) {
      throw new ProvisionError(`${command} ${args.join(" ")} failed (exit code ${result.code}); the tests need: ${plan.packages.join(" ")}`);
    }
  }
  const still = await missingPackages(plan.packages, query);
  if (still.size > 0) throw new ProvisionError(`apt-get finished but these are still not installed: ${[...still].join(" ")}`);
  return { installed: plan.packages };
}

/** A failure the user can act on: printed as it is, without a stack trace. */
export class ProvisionError extends Error {
  override name = "ProvisionError";
}
