/** The process supervisor behind `npm start`: prefixed output, stopping whole process trees, unexpected exits. */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { RestartPolicy } from "../../scripts/lib/restart-policy.ts";
import { Supervisor, type ChildExit, type PlannedRestart } from "../../scripts/lib/supervisor.ts";
import { descendants, stillRunning } from "../../tools/procfs.ts";

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

  it("restarts a child that crashes, with growing delays, and gives up after its policy's quick crashes (told why)", async () => {
    const restarts: [ChildExit, PlannedRestart][] = [];
    const unexpected: ChildExit[] = [];
    const supervisor = new Supervisor({
      output: () => {},
      onUnexpectedExit: (exit) => unexpected.push(exit),
      onRestart: (exit, plan) => restarts.push([exit, plan]),
    });
    const restart = new RestartPolicy({ maxQuickCrashes: 3, quickMs: 10_000, backoff: { initialMs: 100, maxMs: 1000, random: () => 0.999 } });
    const first = supervisor.start({ name: "crashy", command: "sh", args: ["-c", "exit 3"], restart });
    await until(() => unexpected.length === 1);
    expect(restarts.map(([exit, plan]) => [exit.code, plan])).toEqual([
      [3, { delayMs: 100, attempt: 1 }],
      [3, { delayMs: 200, attempt: 2 }],
    ]);
    expect(unexpected[0]).toMatchObject({ name: "crashy", code: 3, gaveUp: "it crashed 3 times in a row, each within 10 s of starting" });
    expect(supervisor.child("crashy")).not.toBe(first); // each restart is a new process in the same place
    await supervisor.stopAll();
  });

  it("a restarted child is stopped like any other, and none is restarted once stopping began", async () => {
    const restarts: PlannedRestart[] = [];
    const supervisor = new Supervisor({ output: () => {}, onRestart: (_, plan) => restarts.push(plan) });
    const first = supervisor.start({
      name: "agent",
      command: "sh",
      args: ["-c", "sleep 300 & wait"],
      restart: new RestartPolicy({ backoff: { initialMs: 50 } }),
    });
    await until(() => descendants(first.pid).some((info) => info.command === "sleep"));
    const crashed = descendants(first.pid);
    process.kill(crashed.find((info) => info.command === "sh")!.pid, "SIGKILL"); // the agent crashes, leaving its sleep
    await until(() => supervisor.child("agent") !== first && descendants(supervisor.child("agent")!.pid).some((info) => info.command === "sleep"));
    expect(restarts).toHaveLength(1);
    expect(stillRunning(crashed)).toEqual([]); // what it left was stopped before the restart
    const second = supervisor.child("agent")!;
    const tree = descendants(second.pid);
    await supervisor.stopAll();
    expect(stillRunning(tree)).toEqual([]);
    expect((await second.exited).signal).toBe("SIGTERM");
    await sleep(200);
    expect(restarts).toHaveLength(1);
  });
});

describe("RestartPolicy", () => {
  it("doubles a jittered delay per quick crash, gives up at the limit, and starts over after a long run", () => {
    const policy = new RestartPolicy({ maxQuickCrashes: 4, quickMs: 30_000, backoff: { initialMs: 500, maxMs: 4000, random: () => 0 } });
    expect([1, 2, 3].map(() => policy.afterCrash(1000))).toEqual([
      { restart: true, delayMs: 250, attempt: 1 },
      { restart: true, delayMs: 500, attempt: 2 },
      { restart: true, delayMs: 1000, attempt: 3 },
    ]);
    expect(policy.afterCrash(29_999)).toEqual({ restart: false, reason: "it crashed 4 times in a row, each within 30 s of starting" });
    // It ran a minute before this crash: a new count from the shortest delay.
    expect(policy.afterCrash(60_000)).toEqual({ restart: true, delayMs: 250, attempt: 1 });
    expect(policy.afterCrash(100)).toEqual({ restart: true, delayMs: 500, attempt: 2 });
  });

  it("keeps each delay within [base/2, base] and under the cap", () => {
    const policy = new RestartPolicy({ maxQuickCrashes: 100, backoff: { initialMs: 500, maxMs: 10_000 } });
    for (let crash = 0; crash < 20; crash++) {
      const decision = policy.afterCrash(0);
      if (!decision.restart) throw new Error("gave up");
      const base = Math.min(10_000, 500 * 2 ** crash);
      expect(decision.delayMs).toBeGreaterThanOrEqual(base / 2);
      expect(decision.delayMs).toBeLessThanOrEqual(base);
    }
    expect(() => new RestartPolicy({ maxQuickCrashes: 0 })).toThrow(RangeError);
  });
});
