/** The process supervisor behind `npm start`: prefixed output, stopping whole process trees, unexpected exits. */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { Supervisor, type ChildExit } from "../../scripts/lib/supervisor.ts";
import { descendants, stillRunning } from "./support/processes.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(20);
  }
}

function collect() {
  const lines: string[] = [];
  return { lines, output: (name: string, line: string, stream: string) => lines.push(`${name}|${stream}|${line}`) };
}

describe("Supervisor", () => {
  it("forwards each child's output line by line under its name", async () => {
    const { lines, output } = collect();
    const supervisor = new Supervisor({ output });
    const child = supervisor.start({ name: "echo", command: "sh", args: ["-c", "printf 'one\\ntwo\\n'; echo err >&2"] });
    await child.exited;
    await until(() => lines.length === 3);
    expect(lines).toEqual(expect.arrayContaining(["echo|stdout|one", "echo|stdout|two", "echo|stderr|err"]));
    await supervisor.stopAll();
  });

  it("stops children and their own children, newest first, and tells nobody it was unexpected", async () => {
    const unexpected: ChildExit[] = [];
    const supervisor = new Supervisor({ output: () => {}, onUnexpectedExit: (exit) => unexpected.push(exit) });
    // Each child leaves a grandchild behind in its process group, as wrangler leaves workerd.
    const first = supervisor.start({ name: "first", command: "sh", args: ["-c", "sleep 300 & wait"] });
    const second = supervisor.start({ name: "second", command: "sh", args: ["-c", "sleep 300 & wait"] });
    const sleeping = (pid: number) => descendants(pid).some((info) => info.command === "sleep");
    await until(() => sleeping(first.pid) && sleeping(second.pid));
    const tree = [first.pid, second.pid].flatMap((pid) => descendants(pid));

    await supervisor.stopAll();
    expect(stillRunning(tree)).toEqual([]);
    expect((await first.exited).signal).toBe("SIGTERM");
    expect(unexpected).toEqual([]);
  });

  it("reports a child that exits on its own", async () => {
    const unexpected: ChildExit[] = [];
    const supervisor = new Supervisor({ output: () => {}, onUnexpectedExit: (exit) => unexpected.push(exit) });
    supervisor.start({ name: "crash", command: "sh", args: ["-c", "exit 3"] });
    await until(() => unexpected.length === 1);
    expect(unexpected[0]).toMatchObject({ name: "crash", code: 3 });
    await supervisor.stopAll();
  });

  it("escalates to SIGKILL when a child ignores SIGTERM", async () => {
    const supervisor = new Supervisor({ output: () => {} });
    const stubborn = supervisor.start({ name: "stubborn", command: "sh", args: ["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"] });
    await until(() => descendants(stubborn.pid).some((info) => info.command === "sleep")); // the trap is set by then
    await stubborn.stop(500);
    expect((await stubborn.exited).signal).toBe("SIGKILL");
  });

  it("takes the children down when the supervising process is killed outright (SIGKILL)", async () => {
    const supervisorModule = pathToFileURL(new URL("../../scripts/lib/supervisor.ts", import.meta.url).pathname).href;
    const script = `
      const { Supervisor } = await import(${JSON.stringify(supervisorModule)});
      const child = new Supervisor({ output: () => {} }).start({ name: "orphan", command: "sh", args: ["-c", "sleep 300 & wait"] });
      console.log(child.pid);
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const [line] = (await once(createInterface({ input: parent.stdout! }), "line")) as [string];
    const tetherPid = Number(line);
    await until(() => descendants(tetherPid).some((info) => info.command === "sleep"));
    const tree = [...descendants(parent.pid!), ...descendants(tetherPid)];

    parent.kill("SIGKILL");
    await until(() => stillRunning(tree).length === 0);
  });
});
