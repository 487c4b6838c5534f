/** The process supervisor behind `npm start`: prefixed output, stopping whole process trees, unexpected exits. */
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
    await until(() => descendants(first.pid).length > 0 && descendants(second.pid).length > 0);
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
    await until(() => descendants(stubborn.pid).length > 0);
    await stubborn.stop(500);
    expect((await stubborn.exited).signal).toBe("SIGKILL");
  });
});
