/**
 * The provisioning step of `npm test` and .ci/run (scripts/lib/provision.ts): which Debian packages are missing,
 * whether it installs them or refuses, and what it says. apt-get never runs here: a recorder stands in for it. The
 * dpkg-query checks run for real against this machine.
 */
import { describe, expect, it } from "vitest";
import {
  DEBIAN_PACKAGES,
  installCommandLine,
  missingPackages,
  parseInstalled,
  planProvisioning,
  provision,
  ProvisionError,
  runCommand,
  type CommandResult,
  type DebianPackage,
  type RunCommand,
} from "../../scripts/lib/provision.ts";

const CHROMIUM: DebianPackage = { name: "chromium", why: "a browser" };
const COTURN: DebianPackage = { name: "coturn", why: "a TURN server" };
const IPROUTE: DebianPackage = { name: "iproute2", why: "network namespaces" };

interface Call {
  command: string;
  args: readonly string[];
  env?: Record<string, string>;
}

/** Answers dpkg-query from a set of installed names (as dpkg would) and records every command; apt-get "installs". */
function fakeSystem(installed: Set<string>, options: { aptFails?: string; aptInstalls?: boolean } = {}): { run: RunCommand; calls: Call[] } {
  const calls: Call[] = [];
  const run: RunCommand = async (command, args, env) => {
    calls.push({ command, args, env });
    if (command === "dpkg-query") {
      const names = args.filter((arg) => !arg.startsWith("-"));
      const known = names.filter((name) => installed.has(name));
      return { code: known.length === names.length ? 0 : 1, stdout: known.map((name) => `${name}\tinstalled\n`).join(""), stderr: "" };
    }
    if (command === "apt-get" && args[0] === options.aptFails) return { code: 100, stdout: "", stderr: "E: failed" };
    if (command === "apt-get" && args[0] === "install" && options.aptInstalls !== false) {
      for (const name of args.slice(1).filter((arg) => !arg.startsWith("-"))) installed.add(name);
    }
    return { code: 0, stdout: "", stderr: "" } satisfies CommandResult;
  };
  return { run, calls };
}

describe("the package list", () => {
  it("has chromium and coturn, and no ffmpeg (it comes from npm)", () => {
    const names = DEBIAN_PACKAGES.map((item) => item.name);
    expect(names).toEqual(expect.arrayContaining(["chromium", "coturn"]));
    expect(names).not.toContain("ffmpeg");
    for (const item of DEBIAN_PACKAGES) expect(item.why.length).toBeGreaterThan(10);
  });
});

describe("planProvisioning", () => {
  it("does nothing when every package is installed, root or not", () => {
    expect(planProvisioning([CHROMIUM, COTURN], new Set(), true)).toEqual({ action: "none" });
    expect(planProvisioning([CHROMIUM, COTURN], new Set(), false)).toEqual({ action: "none" });
  });

  it("as root, installs exactly the missing packages, in list order", () => {
    expect(planProvisioning([CHROMIUM, COTURN, IPROUTE], new Set(["iproute2", "chromium"]), true)).toEqual({
      action: "install",
      packages: ["chromium", "iproute2"],
    });
  });

  it("not as root, refuses with the exact list, why each is needed, and the command that installs them", () => {
    const plan = planProvisioning([CHROMIUM, COTURN, IPROUTE], new Set(["coturn", "iproute2"]), false);
    expect(plan).toEqual({
      action: "refuse",
      packages: ["coturn", "iproute2"],
      message: [
        "The tests need Debian packages that are not installed:",
        "  coturn: a TURN server",
        "  iproute2: network namespaces",
        "Install them (as root), then run the tests again:",
        "  sudo apt-get update && sudo apt-get install -y --no-install-recommends coturn iproute2",
      ].join("\n"),
    });
  });

  it("says 'a package … is' for one", () => {
    const plan = planProvisioning([CHROMIUM, COTURN], new Set(["coturn"]), false);
    expect(plan.action === "refuse" && plan.message.split("\n")[0]).toBe("The tests need a Debian package that is not installed:");
    expect(installCommandLine(["coturn"])).toBe("sudo apt-get update && sudo apt-get install -y --no-install-recommends coturn");
  });
});

describe("parseInstalled", () => {
  it("counts only packages dpkg lists as installed (not removed-with-config, not unknown); strips the architecture", () => {
    const output = "chromium:amd64\tinstalled\ncoturn\tconfig-files\n";
    expect(parseInstalled(["chromium", "coturn", "iproute2"], output)).toEqual(new Set(["coturn", "iproute2"]));
  });
});

describe("provision", () => {
  it("with everything installed: one dpkg-query, no apt-get", async () => {
    const { run, calls } = fakeSystem(new Set(["chromium", "coturn"]));
    expect(await provision({ packages: [CHROMIUM, COTURN], isRoot: true, run, log: () => {} })).toEqual({ installed: [] });
    expect(calls.map((call) => call.command)).toEqual(["dpkg-query"]);
  });

  it("as root: apt-get update once, one noninteractive install of the missing ones, then checks again", async () => {
    const { run, calls } = fakeSystem(new Set(["chromium"]));
    const lines: string[] = [];
    const result = await provision({ packages: [CHROMIUM, COTURN, IPROUTE], isRoot: true, run, log: (line) => lines.push(line) });
    expect(result).toEqual({ installed: ["coturn", "iproute2"] });
    expect(calls.map((call) => [call.command, ...call.args].join(" "))).toEqual([
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own `${field}` format, passed literally.
      "dpkg-query -W -f=${Package}\\t${db:Status-Status}\\n chromium coturn iproute2",
      "apt-get update -q",
      "apt-get install -y -q --no-install-recommends coturn iproute2",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own `${field}` format, passed literally.
      "dpkg-query -W -f=${Package}\\t${db:Status-Status}\\n coturn iproute2",
    ]);
    for (const call of calls.filter((call) => call.command === "apt-get")) expect(call.env).toEqual({ DEBIAN_FRONTEND: "noninteractive" });
    expect(lines).toEqual(["installing Debian packages for the tests: coturn iproute2"]);
  });

  it("not as root: throws the list and the command, and runs no apt-get", async () => {
    const { run, calls } = fakeSystem(new Set(["chromium"]));
    const error = await provision({ packages: [CHROMIUM, COTURN], isRoot: false, run, log: () => {} }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ProvisionError);
    expect((error as Error).message).toContain("  coturn: a TURN server");
    expect((error as Error).message).toContain("sudo apt-get install -y --no-install-recommends coturn");
    expect(calls.map((call) => call.command)).toEqual(["dpkg-query"]);
  });

  it("fails when apt-get fails, and stops there", async () => {
    const { run, calls } = fakeSystem(new Set(), { aptFails: "update" });
    await expect(provision({ packages: [COTURN], isRoot: true, run, log: () => {} })).rejects.toThrow(
      "apt-get update -q failed (exit code 100); the tests need: coturn",
    );
    expect(calls.map((call) => call.args[0])).toEqual(["-W", "update"]);
  });

  it("fails when apt-get succeeded but a package is still missing", async () => {
    const { run } = fakeSystem(new Set(), { aptInstalls: false });
    await expect(provision({ packages: [COTURN], isRoot: true, run, log: () => {} })).rejects.toThrow(
      "apt-get finished but these are still not installed: coturn",
    );
  });
});

describe("missingPackages against this machine's dpkg", () => {
  it("finds the installed ones installed and an unknown name missing", async () => {
    const unknown = "no-such-package-reactor-test";
    expect(await missingPackages(["chromium", "coturn", unknown], runCommand)).toEqual(new Set([unknown]));
  });

  it("reports clearly when dpkg-query cannot run", async () => {
    const run: RunCommand = () => Promise.reject(new Error("spawn dpkg-query ENOENT"));
    await expect(missingPackages(["coturn"], run)).rejects.toThrow(/dpkg-query did not run \(spawn dpkg-query ENOENT\)/);
  });
});
