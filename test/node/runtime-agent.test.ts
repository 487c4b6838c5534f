/**
 * The runtime agent against a real gateway (`wrangler dev`), with the demo model (real ffmpeg) and werift client
 * peers: registration, native and REST clients getting RTP video, commands through the gateway and over the data
 * channel, validation failures, socket drops and resumption, ends and shutdown leaving no ffmpeg behind.
 *
 * One file over 500 lines on purpose: every test here runs against the one `wrangler dev` gateway started below
 * (starting another takes seconds and a second workerd on a 2-core machine). The building blocks, which need no
 * gateway, are in runtime-parts.test.ts.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { MediaClient, negotiateNative, negotiateRest, until, waitAssigned } from "../../tools/media-client.ts";
import { createSession, openSignal, type Frame, type NodePeer } from "../../tools/peers.ts";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { chooseFfmpeg } from "../../runtime/demo/ffmpeg.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { parseCli } from "../../runtime/main.ts";
import { PROJECT_ROOT } from "../../scripts/lib/paths.ts";
import { integer, object } from "../../protocol/schema.ts";
import { defineModel, type AnyModel } from "../../runtime/model.ts";
import { descendants, stillRunning, type ProcessInfo } from "../../tools/procfs.ts";
import { recordingLog } from "./support/recording-log.ts";

let gateway: TestGateway;
let jwt: string;

beforeAll(async () => {
  gateway = await startGateway({ vars: { STUN_URLS: "" } });
  jwt = await clientToken(gateway);
});

afterAll(async () => {
  await gateway?.stop();
});

const ffmpegs = (): ProcessInfo[] => descendants(process.pid).filter((info) => info.command === "ffmpeg");

async function sessionInfo(sessionId: string): Promise<{ state: string; reason?: string }> {
  const response = await fetch(`${gateway.url}/sessions/${sessionId}`, { headers: { Authorization: `Bearer ${jwt}` } });
  return (await response.json()) as { state: string; reason?: string };
}

/** A native client session taken to video: signaling socket, werift peer, RTP arriving. */
async function nativeSession(model: string) {
  const sessionId = await createSession(gateway.url, jwt, model);
  const signal = await openSignal(gateway.url, jwt, sessionId);
  const client = new MediaClient();
  await negotiateNative(signal, client);
  await signal.next((frame) => frame.type === "status" && frame.state === "ACTIVE", 30_000);
  await until(() => client.packets > 30, "RTP video");
  return { sessionId, signal, client };
}

/** Model messages on a native socket, acknowledged as they come (deduplicated by seq, as clients must). */
function messageReader(signal: NodePeer) {
  const seen = new Map<number, unknown>();
  return {
    async next(match: (data: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> {
      for (;;) {
        const frame = await signal.next("message", timeoutMs);
        const seq = frame.seq as number;
        signal.send({ type: "ack", message_seq: seq });
        if (seen.has(seq)) continue;
        seen.set(seq, frame.data);
        const data = frame.data as Record<string, unknown>;
        if (match(data)) return data;
      }
    },
    seen,
  };
}

const commandStatus = (signal: NodePeer, seq: number, state: string) =>
  signal.next((frame: Frame) => frame.type === "command_status" && frame.seq === seq && frame.state === state, 20_000);

/** The demo model, recording every command it is handed (to prove none runs twice). */
function recordingDemo(name = "demo") {
  const base = demoModel();
  const executed: { session: string; type: string; data: unknown }[] = [];
  const model: AnyModel = {
    ...base,
    name,
    async onSession(session) {
      const handler = await base.onSession(session);
      return {
        ...handler,
        onCommand(command) {
          executed.push({ session: session.id, ...command });
          return handler.onCommand(command as never);
        },
      };
    },
  };
  return { model, executed };
}

describe("with one agent serving the demo model", () => {
  let agent: RuntimeAgent;
  const log = recordingLog();
  const { model, executed } = recordingDemo();

  beforeAll(async () => {
    agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model, slots: 4, log });
    await agent.start();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  const served = (sessionId: string) => agent.sessions.find((session) => session.id === sessionId);

  it("serves a native client: the answer comes back through the gateway and RTP video (with key frames) flows", async () => {
    expect(agent.state).toBe("running");
    const before = ffmpegs();
    const { sessionId, signal, client } = await nativeSession("demo");
    expect(client.keyFrames).toBeGreaterThan(0);
    expect(served(sessionId)).toMatchObject({ phase: "serving", generation: 1, peerState: "connected", dataChannelOpen: false });
    expect((await sessionInfo(sessionId)).state).toBe("ACTIVE");
    const encoders = ffmpegs().filter((info) => !before.some((old) => old.pid === info.pid));
    expect(encoders).toHaveLength(1); // one ffmpeg for this session

    // The client ends the session: the gateway sends `end`, the agent drops the session and stops its encoder.
    signal.send({ type: "close" });
    await until(() => served(sessionId) === undefined, "the agent to drop the session");
    await until(() => stillRunning(encoders).length === 0, "the session's ffmpeg to exit");
    await client.close();
    signal.close();
  });

  it("runs gateway commands once each, in order, acknowledges them and answers each with a message", async () => {
    const { sessionId, signal, client } = await nativeSession("demo");
    const messages = messageReader(signal);
    signal.send({ type: "command", seq: 1, command: { type: "set_prompt", data: { prompt: "a red fox" } } });
    signal.send({ type: "command", seq: 2, command: { type: "echo", data: { n: 2, nested: { ok: [1, 2] } } } });
    await commandStatus(signal, 1, "acknowledged");
    await commandStatus(signal, 2, "acknowledged");
    expect(await messages.next(() => true)).toEqual({ type: "command_result", command: "set_prompt", ok: true, prompt: "a red fox" });
    expect(await messages.next(() => true)).toEqual({ type: "command_result", command: "echo", ok: true, data: { n: 2, nested: { ok: [1, 2] } } });
    expect(executed.filter((command) => command.session === sessionId).map((command) => command.type)).toEqual(["set_prompt", "echo"]);
    expect(served(sessionId)?.processedCommandSeq).toBe(2);
    signal.send({ type: "close" });
    await client.close();
    signal.close();
  });

  it("answers a command that fails its schema, or that the model does not have, with command_error (still acknowledged)", async () => {
    const { sessionId, signal, client } = await nativeSession("demo");
    const messages = messageReader(signal);
    const bad: [unknown, string, RegExp][] = [
      [{ type: "set_prompt", data: { prompt: "" } }, "INVALID_COMMAND", /data\.prompt: must be at least 1 characters/],
      [{ type: "set_prompt", data: { prompt: "x".repeat(201) } }, "INVALID_COMMAND", /data\.prompt: must be at most 200 characters/],
      [{ type: "set_prompt", data: { words: "no prompt" } }, "INVALID_COMMAND", /data\.prompt: is required/],
      [{ type: "set_prompt" }, "INVALID_COMMAND", /data\.prompt: is required/],
      [{ type: "echo", data: [1, 2] }, "INVALID_COMMAND", /data: expected object, got array/],
      [{ type: "launch_rockets", data: {} }, "UNKNOWN_COMMAND", /Known: set_prompt, echo/],
    ];
    for (const [index, [command]] of bad.entries()) signal.send({ type: "command", seq: index + 1, command });
    for (const [index, [command, code, detail]] of bad.entries()) {
      await commandStatus(signal, index + 1, "acknowledged");
      const answer = await messages.next(() => true);
      expect(answer).toMatchObject({ type: "command_error", command: (command as { type: string }).type, code });
      expect(answer.message).toMatch(detail);
    }
    expect(executed.filter((command) => command.session === sessionId)).toEqual([]); // the model never saw them
    signal.send({ type: "close" });
    await client.close();
    signal.close();
  });

  it("serves a REST client with a data channel: commands in and answers out on the channel, runtime commands answered by the agent", async () => {
    const sessionId = await createSession(gateway.url, jwt, "demo");
    await waitAssigned(gateway.url, jwt, sessionId);
    const client = new MediaClient({ dataChannel: true });
    await negotiateRest(gateway.url, jwt, sessionId, client);
    await until(() => client.channelOpen && client.packets > 30, "the data channel and RTP video");
    await until(() => served(sessionId)?.dataChannelOpen === true, "the agent to see the channel open");

    client.sendCommand("set_prompt", { prompt: "over the data channel" });
    client.sendCommand("set_prompt", { prompt: 42 });
    client.sendCommand("nope", {});
    client.sendRaw("this is not json");
    client.sendRaw(JSON.stringify({ scope: "application", data: { data: {} } }));
    client.sendCommand("requestCapabilities", {}, "runtime");
    client.sendCommand("ping", {}, "runtime");
    await until(() => client.channelMessages.length >= 6, "six answers on the data channel");
    const byScope = (scope: string) =>
      client.channelMessages.filter((message) => message.scope === scope).map((message) => message.data as Record<string, unknown>);
    expect(byScope("application")).toEqual([
      expect.objectContaining({ type: "command_error", command: "", code: "MALFORMED_ENVELOPE", message: expect.stringContaining("not JSON") }),
      expect.objectContaining({
        type: "command_error",
        command: "",
        code: "MALFORMED_ENVELOPE",
        message: expect.stringContaining("$.data.type: is required"),
      }),
      { type: "command_result", command: "set_prompt", ok: true, prompt: "over the data channel" },
      expect.objectContaining({
        type: "command_error",
        command: "set_prompt",
        code: "INVALID_COMMAND",
        message: expect.stringContaining("data.prompt: expected string, got number"),
      }),
      expect.objectContaining({ type: "command_error", command: "nope", code: "UNKNOWN_COMMAND" }),
    ]);
    expect(byScope("runtime")).toEqual([
      {
        type: "modelCapabilities",
        data: {
          commands: [
            {
              name: "set_prompt",
              description: expect.any(String),
              schema: { prompt: expect.objectContaining({ type: "string", minLength: 1, maxLength: 200 }) },
            },
            { name: "echo", description: expect.any(String), schema: {} },
            { name: "set_image", description: expect.any(String), schema: {} },
          ],
        },
      },
    ]);
    await until(() => served(sessionId)?.lastClientPingAt !== undefined, "the ping to be seen");
    // Everything went over the data channel: nothing waits at the gateway.
    expect(served(sessionId)?.unacknowledgedMessages).toBe(0);
    await fetch(`${gateway.url}/sessions/${sessionId}`, { method: "DELETE", headers: { Authorization: `Bearer ${jwt}` } });
    await client.close();
  });

  it("reports a REST client's dropped peer connection (the grace starts) and answers its reconnect on a new peer connection", async () => {
    const sessionId = await createSession(gateway.url, jwt, "demo");
    await waitAssigned(gateway.url, jwt, sessionId);
    const first = new MediaClient({ dataChannel: true });
    await negotiateRest(gateway.url, jwt, sessionId, first);
    await until(() => first.packets > 30, "RTP video");
    await expect.poll(async () => (await sessionInfo(sessionId)).state, { timeout: 20_000 }).toBe("ACTIVE");

    await first.close(); // the client's peer connection goes away: only the runtime can tell the gateway
    await expect.poll(async () => (await sessionInfo(sessionId)).state, { timeout: 30_000 }).toBe("RECONNECTING");

    const second = new MediaClient({ dataChannel: true });
    await negotiateRest(gateway.url, jwt, sessionId, second, "PUT");
    await until(() => second.packets > 30 && second.keyFrames > 0, "RTP video on the new peer connection");
    await expect.poll(async () => (await sessionInfo(sessionId)).state, { timeout: 20_000 }).toBe("ACTIVE");
    expect(served(sessionId)).toMatchObject({ generation: 2, peerState: "connected" });
    await fetch(`${gateway.url}/sessions/${sessionId}`, { method: "DELETE", headers: { Authorization: `Bearer ${jwt}` } });
    await second.close();
  });

  it("answers a new offer generation on a new peer connection; the session's video goes on", async () => {
    const { sessionId, signal, client } = await nativeSession("demo");
    const next = new MediaClient();
    await negotiateNative(signal, next, 2);
    await until(() => next.packets > 30 && next.keyFrames > 0, "RTP video on generation 2");
    expect(served(sessionId)).toMatchObject({ generation: 2, peerState: "connected" });
    const before = client.packets;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(client.packets - before).toBeLessThan(5); // the old peer connection was closed by the runtime
    signal.send({ type: "close" });
    await Promise.all([client.close(), next.close()]);
    signal.close();
  });

  it("re-registers with its sessions after its control socket drops; the sessions go on", async () => {
    const { sessionId, signal, client } = await nativeSession("demo");
    const messages = messageReader(signal);
    const registrations = () => log.lines.filter((line) => line.includes("registered as")).length;
    const before = registrations();
    agent.dropControlSocket();
    await until(() => registrations() > before, "the agent to register again");
    // Registered with `sessions` listing this one, so the pool kept it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await sessionInfo(sessionId)).state).toBe("ACTIVE");
    signal.send({ type: "command", seq: 1, command: { type: "echo", data: { after: "control drop" } } });
    expect(await messages.next(() => true)).toMatchObject({ command: "echo", data: { after: "control drop" } });
    signal.send({ type: "close" });
    await client.close();
    signal.close();
  });

  it("resumes a session after its session socket drops: same session, every command run once, every message delivered once", async () => {
    const { sessionId, signal, client } = await nativeSession("demo");
    const messages = messageReader(signal);
    signal.send({ type: "command", seq: 1, command: { type: "echo", data: { n: 1 } } });
    await commandStatus(signal, 1, "acknowledged");

    agent.dropSessionSocket(sessionId);
    for (let n = 2; n <= 6; n++) signal.send({ type: "command", seq: n, command: { type: "echo", data: { n } } });
    for (let n = 2; n <= 6; n++) await commandStatus(signal, n, "acknowledged");
    for (let n = 1; n <= 6; n++) expect(await messages.next(() => true)).toMatchObject({ command: "echo", data: { n } });

    const runs = executed.filter((command) => command.session === sessionId).map((command) => (command.data as { n: number }).n);
    expect(runs).toEqual([1, 2, 3, 4, 5, 6]);
    expect(served(sessionId)).toMatchObject({ phase: "serving", processedCommandSeq: 6 });
    await expect.poll(async () => (await sessionInfo(sessionId)).state, { timeout: 20_000 }).toBe("ACTIVE");
    expect(log.lines.some((line) => line.includes(`session ${sessionId}: connection lost`))).toBe(true);
    const before = client.packets;
    await until(() => client.packets > before + 30, "video to keep flowing"); // media never depended on the socket
    signal.send({ type: "close" });
    await client.close();
    signal.close();
  });
});

describe("model messages while the session socket is down", () => {
  it("are kept, numbered, and delivered once and in order after the reconnect", async () => {
    // Emits `count` messages 100 ms after the command: by then the socket is down (reconnects wait ≥ 1 s here).
    const model = defineModel({
      name: "burst",
      tracks: [{ name: "main_video", kind: "video", direction: "recvonly" }],
      commands: { burst: { description: "Emits count messages a little later.", schema: object({ count: integer({ min: 1, max: 50 }) }) } },
      onSession: (session) => ({
        onCommand: (command) =>
          void setTimeout(() => {
            for (let i = 1; i <= command.data.count; i++) session.emit({ i });
          }, 100),
        close: () => undefined,
      }),
    });
    const log = recordingLog();
    const agent = new RuntimeAgent({
      gatewayUrl: gateway.url,
      token: gateway.runtimeToken,
      model,
      slots: 1,
      log,
      backoff: { initialMs: 2000, maxMs: 2000 },
    });
    await agent.start();
    try {
      const sessionId = await createSession(gateway.url, jwt, "burst");
      const signal = await openSignal(gateway.url, jwt, sessionId);
      const client = new MediaClient();
      await negotiateNative(signal, client); // no video: the model writes none; the connection is what matters
      await signal.next((frame) => frame.type === "status" && frame.state === "ACTIVE", 30_000);
      const messages = messageReader(signal);
      signal.send({ type: "command", seq: 1, command: { type: "burst", data: { count: 5 } } });
      await commandStatus(signal, 1, "acknowledged");
      agent.dropSessionSocket(sessionId);
      const served = () => agent.sessions.find((session) => session.id === sessionId);
      await until(() => served()?.unacknowledgedMessages === 5, "five messages kept while the socket is down");
      expect(served()?.phase).toBe("connecting");
      for (let i = 1; i <= 5; i++) expect(await messages.next(() => true)).toEqual({ i });
      expect([...messages.seen.keys()]).toEqual([1, 2, 3, 4, 5]); // numbered from 1, no gaps, no duplicates
      signal.send({ type: "close" });
      await client.close();
      signal.close();
    } finally {
      await agent.stop();
    }
  });
});

describe("ending", () => {
  it("agent.stop() releases its sessions (they end at the gateway) and leaves no ffmpeg running", async () => {
    const agent = new RuntimeAgent({
      gatewayUrl: gateway.url,
      token: gateway.runtimeToken,
      model: { ...demoModel(), name: "demo-stop" },
      slots: 2,
      log: recordingLog(),
    });
    await agent.start();
    const before = ffmpegs();
    const sessions = [await nativeSession("demo-stop"), await nativeSession("demo-stop")];
    const encoders = ffmpegs().filter((info) => !before.some((old) => old.pid === info.pid));
    expect(encoders).toHaveLength(2);

    await agent.stop();
    expect(agent.state).toBe("stopped");
    expect(agent.sessions).toEqual([]);
    expect(stillRunning(encoders)).toEqual([]);
    for (const { sessionId, signal, client } of sessions) {
      expect(await sessionInfo(sessionId)).toMatchObject({ state: "INACTIVE", reason: expect.stringContaining("runtime_shutdown") });
      await client.close();
      signal.close();
    }
  });

  it("with a spare encoder, each session takes the one already running and gives it back: none starts on a session's path", async () => {
    const before = ffmpegs();
    const agent = new RuntimeAgent({
      gatewayUrl: gateway.url,
      token: gateway.runtimeToken,
      model: { ...demoModel({ spareEncoders: 1 }), name: "demo-spare" },
      slots: 1,
      log: recordingLog(),
    });
    await agent.start();
    const started = () => ffmpegs().filter((info) => !before.some((old) => old.pid === info.pid));
    const spare = started();
    expect(spare).toHaveLength(1); // running before any session
    for (let round = 1; round <= 2; round++) {
      const { sessionId, signal, client } = await nativeSession("demo-spare");
      expect(client.keyFrames).toBeGreaterThan(0); // handed over from its last key frame
      expect(started().map((info) => info.pid)).toEqual([spare[0]!.pid]); // the spare itself; no other encoder
      signal.send({ type: "close" });
      await until(() => agent.sessions.every((session) => session.id !== sessionId), "the agent to drop the session");
      await client.close();
      signal.close();
      expect(stillRunning(spare)).toHaveLength(1); // given back, still running for the next session
    }
    await agent.stop();
    expect(stillRunning(spare)).toEqual([]);
    expect(started()).toEqual([]);
  });

  it("closes a session locally (and its encoder) when it ended at the gateway while the session socket was down", async () => {
    const log = recordingLog();
    const agent = new RuntimeAgent({
      gatewayUrl: gateway.url,
      token: gateway.runtimeToken,
      model: { ...demoModel(), name: "demo-gone" },
      slots: 1,
      log,
      backoff: { initialMs: 2000, maxMs: 2000 },
    });
    await agent.start();
    try {
      const before = ffmpegs();
      const { sessionId, signal, client } = await nativeSession("demo-gone");
      const encoders = ffmpegs().filter((info) => !before.some((old) => old.pid === info.pid));
      agent.dropSessionSocket(sessionId);
      signal.send({ type: "close" }); // ends while the runtime is away: its reconnect is refused (409)
      await until(() => agent.sessions.length === 0, "the agent to give the session up");
      await until(() => stillRunning(encoders).length === 0, "its encoder to stop");
      expect(log.lines.some((line) => line.includes("no longer has this session for us (upgrade refused with HTTP 409"))).toBe(true);
      await client.close();
      signal.close();
    } finally {
      await agent.stop();
    }
  });

  it("releases a session the model cannot start; the gateway ends it", async () => {
    const model: AnyModel = { ...demoModel(), name: "failing", onSession: () => Promise.reject(new Error("out of GPU memory")) };
    const agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model, slots: 1, log: recordingLog() });
    await agent.start();
    try {
      const sessionId = await createSession(gateway.url, jwt, "failing");
      await expect
        .poll(async () => sessionInfo(sessionId), { timeout: 20_000 })
        .toMatchObject({ state: "INACTIVE", reason: expect.stringContaining("model_failed: out of GPU memory") });
      await until(() => agent.sessions.length === 0, "the agent to forget the session");
    } finally {
      await agent.stop();
    }
  });

  it("start() fails with the gateway's refusal when the runtime token is wrong", async () => {
    const agent = new RuntimeAgent({
      gatewayUrl: gateway.url,
      token: "rt_not-the-right-token",
      model: demoModel(),
      slots: 1,
      log: recordingLog(),
      warmUp: false,
    });
    await expect(agent.start()).rejects.toThrow(/refused the control socket: upgrade refused with HTTP 401.*RUNTIME_CREDENTIAL_INVALID/);
    expect(agent.state).toBe("stopped");
  });
});

describe("when the demo model's encoder cannot start", () => {
  const noFfmpeg =
    "demo encoder: cannot start ffmpeg at /nonexistent/ffmpeg (ENOENT: no such file): fix --ffmpeg <path>, or leave it out to use the packaged ffmpeg";

  it("logs the cause and the fix in one line, tells each client (on the data channel too) with ENCODER_UNAVAILABLE, and keeps the session", async () => {
    const log = recordingLog();
    const model: AnyModel = { ...demoModel({ ffmpeg: chooseFfmpeg("/nonexistent/ffmpeg", "--ffmpeg"), spareEncoders: 1 }), name: "demo-no-ffmpeg" };
    const agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model, slots: 2, log, warmUp: false });
    await agent.start(); // its warm encoder failed: said once, and the agent serves all the same
    try {
      expect(log.lines.filter((line) => line.includes("demo encoder"))).toEqual([`error ${noFfmpeg}`]);
      const told = { type: "error", code: "ENCODER_UNAVAILABLE", message: noFfmpeg };

      // A native client: the message waits for it at the gateway; set_prompt fails with the same words.
      const sessionId = await createSession(gateway.url, jwt, model.name);
      const signal = await openSignal(gateway.url, jwt, sessionId);
      const messages = messageReader(signal);
      expect(await messages.next((data) => data.type === "error")).toEqual(told);
      expect(log.lines).toContain(`error session ${sessionId}: ${noFfmpeg}`);
      const native = new MediaClient(); // its peer connection comes up: only the video is missing
      await negotiateNative(signal, native);
      await signal.next((frame) => frame.type === "status" && frame.state === "ACTIVE", 30_000);
      signal.send({ type: "command", seq: 1, command: { type: "set_prompt", data: { prompt: "a red fox" } } });
      expect(await messages.next((data) => data.type === "command_error")).toMatchObject({
        command: "set_prompt",
        code: "COMMAND_FAILED",
        message: expect.stringContaining(noFfmpeg),
      });
      expect(agent.sessions.map((session) => session.id)).toContain(sessionId); // not released: the client decides

      // A REST client (as the official one) reads messages only on its data channel: it is told there.
      const restSession = await createSession(gateway.url, jwt, model.name);
      await waitAssigned(gateway.url, jwt, restSession);
      const client = new MediaClient({ dataChannel: true });
      await negotiateRest(gateway.url, jwt, restSession, client);
      await until(
        () => client.channelMessages.some((message) => JSON.stringify(message.data) === JSON.stringify(told)),
        "the error on the data channel",
      );
      expect(client.packets + native.packets).toBe(0);
      signal.send({ type: "close" });
      await native.close();
      signal.close();
      await fetch(`${gateway.url}/sessions/${restSession}`, { method: "DELETE", headers: { Authorization: `Bearer ${jwt}` } });
      await client.close();
    } finally {
      await agent.stop();
    }
  });

  it("an ffmpeg that exits before its first frame: the client gets its last words and the fix", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "fake-ffmpeg-"));
    const fake = path.join(dir, "ffmpeg");
    await writeFile(fake, "#!/bin/sh\necho \"Unknown encoder 'libvpx'\" >&2\nexit 1\n", { mode: 0o755 });
    const log = recordingLog();
    const model: AnyModel = { ...demoModel({ ffmpeg: chooseFfmpeg(fake, "REACTOR_FFMPEG") }), name: "demo-bad-ffmpeg" };
    const agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model, slots: 1, log, warmUp: false });
    await agent.start();
    try {
      const sessionId = await createSession(gateway.url, jwt, model.name);
      const signal = await openSignal(gateway.url, jwt, sessionId);
      const expected = `demo encoder: ffmpeg at ${fake} exited (code 1) before its first frame: "Unknown encoder 'libvpx'": fix REACTOR_FFMPEG, or unset it to use the packaged ffmpeg`;
      expect(await messageReader(signal).next((data) => data.type === "error")).toEqual({
        type: "error",
        code: "ENCODER_UNAVAILABLE",
        message: expected,
      });
      expect(log.lines).toContain(`error session ${sessionId}: ${expected}`);
      signal.send({ type: "close" });
      signal.close();
    } finally {
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the CLI", () => {
  /** `node runtime/main.ts` serving the demo model, once it has registered. */
  async function startCli(runtimeId: string) {
    const cli = spawn(process.execPath, ["runtime/main.ts", "--gateway", gateway.url, "--model", "demo", "--slots", "1", "--runtime-id", runtimeId], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, REACTOR_RUNTIME_TOKEN: gateway.runtimeToken },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output: string[] = [];
    for (const stream of [cli.stdout, cli.stderr]) createInterface({ input: stream }).on("line", (line) => output.push(line));
    await until(
      () => output.some((line) => line.includes("serving model demo with 1 slot(s)")),
      `the CLI to register:\n${output.join("\n")}`,
      60_000,
    );
    return { cli, output, exited: once(cli, "exit") as Promise<[number | null, NodeJS.Signals | null]> };
  }

  it("on SIGTERM releases its sessions, stops its encoders and exits 143", async () => {
    const { cli, exited } = await startCli("cli-term");
    try {
      const { sessionId, signal, client } = await nativeSession("demo");
      const encoders = descendants(cli.pid!).filter((info) => info.command === "ffmpeg");
      expect(encoders).toHaveLength(1);
      cli.kill("SIGTERM");
      expect(await exited).toEqual([143, null]);
      expect(stillRunning(encoders)).toEqual([]);
      expect(await sessionInfo(sessionId)).toMatchObject({ state: "INACTIVE", reason: expect.stringContaining("runtime_shutdown") });
      await client.close();
      signal.close();
    } finally {
      cli.kill("SIGKILL");
    }
  });

  it("serves sessions, and a SIGKILLed agent leaves no ffmpeg behind (each encoder is tethered to it)", async () => {
    const { cli } = await startCli("cli-kill");
    try {
      const { signal, client } = await nativeSession("demo");
      const encoders = descendants(cli.pid!).filter((info) => info.command === "ffmpeg");
      expect(encoders).toHaveLength(1);

      cli.kill("SIGKILL");
      await until(() => stillRunning(encoders).length === 0, "the orphaned ffmpeg to be stopped by its tether");
      await client.close();
      signal.close();
    } finally {
      cli.kill("SIGKILL");
    }
  });

  it("refuses bad arguments with a message", () => {
    expect(() => parseCli(["--token", "rt_x", "--slots", "two"], {})).toThrow(/--slots must be an integer/);
    expect(() => parseCli(["--slots", "1"], {})).toThrow(/a runtime token is required/);
    expect(() => parseCli(["--token", "rt_x", "--model", "gpt"], {})).toThrow(/unknown model "gpt"/);
    expect(() => parseCli(["--token", "rt_x", "--log-level", "loud"], {})).toThrow(/--log-level/);
    expect(() => parseCli(["--tokn", "rt_x"], {})).toThrow(/Unknown option/);
    expect(parseCli([], { REACTOR_RUNTIME_TOKEN: "rt_env", REACTOR_GATEWAY_URL: "http://gw:1" })).toMatchObject({
      token: "rt_env",
      gatewayUrl: "http://gw:1",
      model: "demo",
      slots: 1,
    });
  });

  it("runs the ffmpeg installed from npm unless --ffmpeg or REACTOR_FFMPEG asks for another (the flag wins)", () => {
    const packaged = parseCli(["--token", "rt_x"], {})!.ffmpeg;
    expect(packaged).toEqual({ command: expect.stringMatching(/node_modules\/@ffmpeg-installer\/linux-x64\/ffmpeg$/), source: "package" });
    expect(parseCli(["--token", "rt_x"], { REACTOR_FFMPEG: "/opt/ffmpeg" })!.ffmpeg).toEqual({ command: "/opt/ffmpeg", source: "REACTOR_FFMPEG" });
    expect(parseCli(["--token", "rt_x", "--ffmpeg", "ffmpeg"], { REACTOR_FFMPEG: "/opt/ffmpeg" })!.ffmpeg).toEqual({
      command: "ffmpeg",
      source: "--ffmpeg",
    });
    expect(parseCli(["--token", "rt_x", "--ffmpeg", "bin/ffmpeg"], {})!.ffmpeg).toEqual({
      command: `${process.cwd()}/bin/ffmpeg`,
      source: "--ffmpeg",
    });
  });
});
