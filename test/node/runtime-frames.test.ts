/**
 * The runtime agent's side of the session socket, against a loopback WebSocket server that plays the gateway:
 *   - a frame the agent cannot take (here a `session` frame over the 256 KiB frame limit) is reported with
 *     `frame_error { code, frame_type }` instead of being skipped in silence (the model would never start);
 *   - the message outbox numbers after the gateway's `session.message_seq` when the gateway has more than it
 *     ever numbered (a fresh outbox for a session the gateway already has messages of in this run).
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { MessageOutbox } from "../../runtime/outbox.ts";
import { ServedSession } from "../../runtime/session.ts";
import type { AnyModel } from "../../runtime/model.ts";

const servers: WebSocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A loopback "gateway": resolves with the first session socket and the frames it receives. */
async function fakeGateway(): Promise<{
  url: string;
  connected: Promise<{ ws: WebSocket; frames: Record<string, unknown>[]; next: () => Promise<Record<string, unknown>> }>;
}> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  servers.push(server);
  await once(server, "listening");
  const connected = new Promise<{ ws: WebSocket; frames: Record<string, unknown>[]; next: () => Promise<Record<string, unknown>> }>((resolve) => {
    server.once("connection", (ws) => {
      const frames: Record<string, unknown>[] = [];
      const waiters: (() => void)[] = [];
      ws.on("message", (data) => {
        frames.push(JSON.parse(data.toString()) as Record<string, unknown>);
        for (const wake of waiters.splice(0)) wake();
      });
      const next = async () => {
        while (frames.length === 0) await new Promise<void>((wake) => waiters.push(wake));
        return frames.shift()!;
      };
      resolve({ ws, frames, next });
    });
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connected };
}

const model = {
  name: "test",
  tracks: [],
  commands: {},
  onSession: () => ({ onCommand: () => undefined, close: () => undefined }),
} as unknown as AnyModel;

describe("runtime agent: frames it cannot take", () => {
  it("an oversize session frame is reported as frame_error (FRAME_TOO_LARGE, frame_type session), not skipped", async () => {
    const gateway = await fakeGateway();
    const closed: string[] = [];
    const session = new ServedSession({
      sessionId: "ses_test",
      runtimeId: "gpu-1",
      gatewayUrl: gateway.url,
      token: "rt_test",
      model,
      webrtc: {},
      log: () => undefined,
      onClosed: (_id, reason) => closed.push(reason),
    });
    session.start();
    const { ws, next } = await gateway.connected;
    expect(await next()).toMatchObject({ type: "hello", runtime_id: "gpu-1", command_seq: 0 });
    ws.send(
      JSON.stringify({ type: "session", session_id: "ses_test", state: "WAITING", message_seq: 0, extra_args: { prompt: "x".repeat(270_000) } }),
    );
    expect(await next()).toMatchObject({ type: "frame_error", code: "FRAME_TOO_LARGE", frame_type: "session" });
    expect(session.info.phase).toBe("connecting"); // the model was never started on a frame it did not read
    ws.send("not json");
    expect(await next()).toMatchObject({ type: "frame_error", code: "FRAME_MALFORMED" });
    session.disconnect();
  });
});

describe("runtime agent: message outbox honours session.message_seq", () => {
  it("numbers after message_seq when the gateway has more than this outbox numbered; resends what it keeps otherwise", () => {
    const fresh = new MessageOutbox();
    fresh.onGatewayFrame({ type: "session", message_seq: 5 }, () => undefined);
    expect(fresh.add("application", {}).seq).toBe(6);

    const kept = new MessageOutbox();
    const frames = [1, 2, 3].map((n) => kept.add("application", { n }).frame);
    const sent: string[] = [];
    kept.onGatewayFrame({ type: "session", message_seq: 1 }, (frame) => sent.push(frame));
    expect(sent).toEqual([frames[1], frames[2]]);
    expect(kept.add("application", {}).seq).toBe(4); // a lower message_seq never renumbers
  });
});
