/**
 * A redeploy in the middle of sessions: the whole gateway (`wrangler dev`, every Durable Object with it) is killed
 * (SIGKILL) and started again on the same state directory and port, as a deploy aborts every object and drops every
 * socket. The real runtime agent (werift, its own reconnect and re-registration) serves a model; the clients are
 * native signaling sockets with werift peer connections, so media never depends on the gateway being up.
 *
 * Sessions at the moment of the kill: A ACTIVE, with a command in flight; C RECONNECTING (its client gone, the
 * grace running); B WAITING in the queue behind them. Afterwards: A resumes with every command run exactly once;
 * C's grace still ends it at its deadline, and its slot goes to B; every client is told why; no slot is left held;
 * each session's billed segments follow each other without a gap or an overlap.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { MediaClient, negotiateNative } from "../../tools/media-client.ts";
import { createSession, openSignal, type Frame, type NodePeer } from "../../tools/peers.ts";
import { integer, object } from "../../protocol/schema.ts";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { defineModel } from "../../runtime/model.ts";

const GRACE_SECONDS = 20;
const MODEL = "redeploy";
const WAIT = { timeout: 60_000, interval: 200 };

let stateDir: string;
let gateway: TestGateway;
let agent: RuntimeAgent;
let jwt: string;
const executed: { session: string; n: number }[] = [];

const model = defineModel({
  name: MODEL,
  tracks: [{ name: "main_video", kind: "video", direction: "recvonly" }],
  commands: { echo: { description: "Answers with n.", schema: object({ n: integer() }) } },
  onSession: (session) => ({
    onCommand: (command) => {
      executed.push({ session: session.id, n: command.data.n });
      session.emit({ n: command.data.n });
    },
    close: () => undefined,
  }),
});

beforeAll(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), "reactor-redeploy-"));
  gateway = await startGateway({ stateDir, vars: { STUN_URLS: "", SESSION_GRACE_SECONDS: String(GRACE_SECONDS) } });
  jwt = await clientToken(gateway);
  agent = new RuntimeAgent({
    gatewayUrl: gateway.url,
    token: gateway.runtimeToken,
    model,
    slots: 2,
    runtimeId: "gpu-redeploy",
    backoff: { initialMs: 250, maxMs: 1000 },
    log: () => undefined,
  });
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  await gateway?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

const api = async (method: string, route: string) => {
  const response = await fetch(`${gateway.url}${route}`, { method, headers: { Authorization: `Bearer ${jwt}` } });
  return (await response.json()) as Record<string, unknown>;
};
const stateOf = async (sessionId: string) => (await api("GET", `/sessions/${sessionId}/info`)).state;
const isStatus = (state: string) => (frame: Frame) => frame.type === "status" && frame.state === state;

/** Every status a socket was sent carries a reason. */
function reasons(peer: NodePeer): { state: string; reason: unknown }[] {
  return peer.frames.filter((frame) => frame.type === "status").map((frame) => ({ state: frame.state as string, reason: frame.reason }));
}

/** A native client of a new session, taken to ACTIVE with a werift peer connection. */
async function activeClient(): Promise<{ sessionId: string; signal: NodePeer; media: MediaClient }> {
  const sessionId = await createSession(gateway.url, jwt, MODEL);
  const signal = await openSignal(gateway.url, jwt, sessionId);
  const media = new MediaClient();
  await negotiateNative(signal, media);
  await signal.next(isStatus("ACTIVE"), 30_000);
  return { sessionId, signal, media };
}

/** Sends command `n` (seq `n`) and waits until it is acknowledged. */
async function commandRoundTrip(signal: NodePeer, n: number): Promise<void> {
  signal.send({ type: "command", seq: n, command: { type: "echo", data: { n } } });
  await signal.next((frame) => frame.type === "command_status" && frame.seq === n && frame.state === "acknowledged", 30_000);
}

/** The session's billed segments follow each other with no gap or overlap, and sum to `seconds` (± 2 s). */
async function expectContiguousBilling(sessionId: string, seconds: number): Promise<string> {
  const usage = await api("GET", `/v1/sessions/${sessionId}/usage`);
  const segments = usage.segments as { segment: number; state: string; started_at: number; ended_at: number; open?: boolean }[];
  expect(segments.length).toBeGreaterThan(0);
  segments.forEach((segment, i) => {
    expect(segment.segment).toBe(i + 1);
    expect(segment.open).toBeUndefined();
    if (i > 0) expect(segment.started_at).toBe(segments[i - 1]!.ended_at);
  });
  expect(Math.abs((usage.billed_seconds as number) - seconds)).toBeLessThanOrEqual(2);
  return `${(usage.billed_seconds as number).toFixed(1)} s in ${segments.map((segment) => segment.state).join(", ")}`;
}

describe("a redeploy (every object aborted, every socket dropped) in the middle of sessions", () => {
  it("A resumes with each command run once, C's grace ends it on time and B takes its slot; reasons, slots and billing add up", async () => {
    // ── Before: A active, C's client gone (grace running), B queued behind them.
    const a = await activeClient();
    await commandRoundTrip(a.signal, 1);
    const c = await activeClient();
    const cActiveAt = Date.now();
    c.signal.close();
    await expect.poll(() => stateOf(c.sessionId), WAIT).toBe("RECONNECTING");
    const cDroppedAt = Date.now();
    const bId = await createSession(gateway.url, jwt, MODEL);
    const b = await openSignal(gateway.url, jwt, bId);
    expect(await b.next(isStatus("WAITING"))).toMatchObject({ queue_position: 1 });
    a.signal.send({ type: "command", seq: 2, command: { type: "echo", data: { n: 2 } } }); // in flight at the kill

    // ── The redeploy: every process of the gateway killed outright, then started on the same state and port.
    const { port, vars } = gateway;
    const killedAt = Date.now();
    process.kill(-gateway.pid, "SIGKILL");
    await gateway.stop();
    gateway = await startGateway({ stateDir, port, vars, migrate: false });
    const downSeconds = (Date.now() - killedAt) / 1000;

    // ── The agent comes back by itself, registering with the sessions it serves.
    await expect
      .poll(
        async () => ((await api("GET", "/v1/models")).models as { name: string; runtimes: number }[]).find((m) => m.name === MODEL)?.runtimes,
        WAIT,
      )
      .toBe(1);

    // ── A's client reconnects, resends from where the gateway says, and the session resumes.
    const a2 = await openSignal(gateway.url, jwt, a.sessionId);
    const welcome = await a2.next("welcome");
    const next = welcome.next_command_seq as number;
    expect([2, 3]).toContain(next); // 2 if command 2 died with the gateway, 3 if it got in first
    for (let n = next; n <= 2; n++) a2.send({ type: "command", seq: n, command: { type: "echo", data: { n } } });
    await a2.next(isStatus("ACTIVE"), 60_000);
    await commandRoundTrip(a2, 3);
    expect(executed.filter((run) => run.session === a.sessionId).map((run) => run.n)).toEqual([1, 2, 3]);

    // ── B's client reconnects: still queued. C's grace (set before the kill) ends it, and B takes its slot.
    const b2 = await openSignal(gateway.url, jwt, bId);
    expect(await b2.next("status")).toMatchObject({ state: "WAITING", queue_position: 1, reason: expect.any(String) });
    await expect.poll(() => stateOf(c.sessionId), WAIT).toBe("CLOSED");
    expect(await api("GET", `/sessions/${c.sessionId}`)).toMatchObject({ reason: "client_reconnect_timeout" });
    const media = new MediaClient();
    await b2.next("ice_servers", 60_000); // assigned
    await negotiateNative(b2, media);
    await b2.next(isStatus("ACTIVE"), 30_000);

    // ── C's client, back too late, is told why.
    const c2 = await openSignal(gateway.url, jwt, c.sessionId);
    expect(await c2.next(isStatus("CLOSED"))).toMatchObject({ reason: "client_reconnect_timeout" });

    // ── The end: everything released, every client told why, billing without gaps or overlaps.
    a2.send({ type: "close" });
    b2.send({ type: "close" });
    await expect.poll(async () => [await stateOf(a.sessionId), await stateOf(bId)], WAIT).toEqual(["CLOSED", "CLOSED"]);
    expect((await api("GET", "/v1/limits")).sessions_in_use).toBe(0);
    await expect
      .poll(
        async () =>
          ((await api("GET", "/v1/models")).models as { name: string; slots: { total: number; free: number } }[]).find((m) => m.name === MODEL)
            ?.slots,
        WAIT,
      )
      .toEqual({ total: 2, free: 2 });
    for (const peer of [a2, b2, c2]) for (const status of reasons(peer)) expect(status.reason, JSON.stringify(status)).toEqual(expect.any(String));
    // A: billed from its first ACTIVE to its end, through the redeploy, each millisecond once.
    const aBilled = await expectContiguousBilling(a.sessionId, (await billedSpan(a.sessionId)) / 1000);
    // C: ACTIVE until its client left, then exactly its grace (ended at the deadline, however late the alarm).
    const cBilled = await expectContiguousBilling(c.sessionId, (cDroppedAt - cActiveAt) / 1000 + GRACE_SECONDS);
    console.log(
      `redeploy: gateway down ${downSeconds.toFixed(1)} s; A resent from seq ${next}, commands run ${executed.length} times for 3 commands; ` +
        `A billed ${aBilled}; C billed ${cBilled}`,
    );
    await Promise.all([a.media.close(), c.media.close(), media.close()]);
  }, 300_000);
});

/** From the session's first ACTIVE to its end, by its event log (ms). */
async function billedSpan(sessionId: string): Promise<number> {
  const { events } = (await api("GET", `/v1/sessions/${sessionId}/events`)) as { events: { at: number; type: string; detail?: { to?: string } }[] };
  const first = events.find((event) => event.type === "state" && event.detail?.to === "ACTIVE")!;
  const ended = events.find((event) => event.type === "ended")!;
  return ended.at - first.at;
}
