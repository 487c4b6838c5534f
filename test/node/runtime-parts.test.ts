/**
 * The runtime agent's building blocks on their own, no gateway: its managed socket against a loopback WebSocket
 * server, backoff, the message outbox, command checks, VP8 key-frame detection and data channel envelopes. (The
 * agent against a real gateway is runtime-agent.test.ts.)
 */
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { Backoff } from "../../lib/backoff.ts";
import { PoolFrame } from "../../protocol/runtime.ts";
import { checkCommand } from "../../runtime/commands.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { decodeEnvelope } from "../../runtime/envelope.ts";
import { rtpFields, startsVp8KeyFrame } from "../../runtime/media/rtp.ts";
import { MessageOutbox } from "../../runtime/outbox.ts";
import { ManagedSocket, type SocketFailure } from "../../runtime/socket.ts";
import { until } from "../../tools/media-client.ts";
import { recordingLog } from "./support/recording-log.ts";

describe("a managed socket", () => {
  it("skips frames that fail the protocol (logged with their code), reconnects after a loss, and gives up when told", async () => {
    let connections = 0;
    const server = new WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      verifyClient: (_info, accept) => (connections < 2 ? accept(true) : accept(false, 409, "session ended")),
    });
    server.on("connection", (ws, request) => {
      connections++;
      expect(request.headers.authorization).toBe("Bearer rt_secret");
      ws.send("not json");
      ws.send(Buffer.from([1, 2, 3]), { binary: true });
      ws.send(JSON.stringify({ type: "teleport" }));
      ws.send(JSON.stringify({ type: "assign" }));
      ws.send(JSON.stringify({ type: "assign", session_id: `s${connections}` }));
      setTimeout(() => ws.terminate(), 100);
    });
    await new Promise((resolve) => server.once("listening", resolve));
    const log = recordingLog();
    const frames: PoolFrame[] = [];
    const failures: SocketFailure[] = [];
    let opened = 0;
    const socket = new ManagedSocket<PoolFrame, never>({
      url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/`,
      token: "rt_secret",
      schema: PoolFrame,
      log,
      backoff: { initialMs: 20, maxMs: 50 },
      onOpen: () => opened++,
      onFrame: (frame) => frames.push(frame),
      onLost: (failure) => {
        failures.push(failure);
        return failure.kind !== "refused";
      },
    });
    try {
      socket.start();
      await until(() => socket.state === "stopped", "the socket to give up");
      expect(opened).toBe(2);
      expect(frames).toEqual([
        { type: "assign", session_id: "s1" },
        { type: "assign", session_id: "s2" },
      ]);
      const skipped = log.lines.filter((line) => line.includes("bad frame")).map((line) => /\((\w+):/.exec(line)![1]);
      const perConnection = ["FRAME_MALFORMED", "FRAME_UNSUPPORTED", "UNKNOWN_FRAME_TYPE", "FRAME_INVALID"];
      expect(skipped).toEqual([...perConnection, ...perConnection]);
      expect(failures.map((failure) => failure.kind)).toEqual(["closed", "closed", "refused"]);
      expect(failures.at(-1)).toMatchObject({ kind: "refused", status: 409 });
    } finally {
      socket.stop();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("building blocks", () => {
  it("backoff: jittered within [base/2, base], doubling up to the cap, and reset after a success", () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    expect([low.next(), low.next(), low.next(), low.next(), low.next(), low.next()]).toEqual([50, 100, 200, 400, 500, 500]);
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    expect([high.next(), high.next(), high.next(), high.next(), high.next()]).toEqual([100, 200, 400, 800, 1000]);
    high.reset();
    expect(high.next()).toBe(100);
    expect(() => new Backoff({ initialMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(RangeError);
  });

  it("message outbox: numbers from 1, forgets what is acknowledged, resends on session and resend_messages", () => {
    const outbox = new MessageOutbox();
    const frames = [1, 2, 3, 4].map((n) => outbox.add("application", { n }).frame);
    expect(JSON.parse(frames[0]!)).toEqual({ type: "message", seq: 1, scope: "application", data: { n: 1 } });
    const sent: string[] = [];
    outbox.onGatewayFrame({ type: "session", message_seq: 2 }, (frame) => sent.push(frame));
    expect(sent).toEqual([frames[2], frames[3]]);
    outbox.onGatewayFrame({ type: "message_ack", seq: 2 }, () => undefined);
    expect(outbox.size).toBe(2);
    sent.length = 0;
    outbox.onGatewayFrame({ type: "resend_messages", from_seq: 1 }, (frame) => sent.push(frame));
    expect(sent).toEqual([frames[2], frames[3]]); // 1 and 2 are gone: acknowledged
    outbox.acknowledge(1); // an older acknowledgement changes nothing
    expect(outbox.size).toBe(2);
    outbox.acknowledge(4);
    expect(outbox.size).toBe(0);
    expect(outbox.add("runtime", null).seq).toBe(5); // numbering goes on without gaps
  });

  it("command checks: unknown type, schema failure with the field, and the validated data", () => {
    const { commands } = demoModel();
    expect(checkCommand(commands, { type: "set_prompt", data: { prompt: "hi", extra: 1 } })).toEqual({
      ok: true,
      value: { type: "set_prompt", data: { prompt: "hi" }, uploads: {} },
    });
    expect(checkCommand(commands, { type: "echo" })).toEqual({ ok: true, value: { type: "echo", data: {}, uploads: {} } });
    // Declared file parameters: each required, no others.
    const image = { upload_id: "upl_AAAAAAAAAAAAAAAAAAAAAA", name: "a.png", mime_type: "image/png", size: 3 };
    expect(checkCommand(commands, { type: "set_image", data: {}, uploads: { image } })).toEqual({
      ok: true,
      value: { type: "set_image", data: {}, uploads: { image } },
    });
    expect(checkCommand(commands, { type: "set_image", data: {} })).toMatchObject({
      ok: false,
      error: { code: "INVALID_COMMAND", message: expect.stringContaining("uploads.image: is required") },
    });
    expect(checkCommand(commands, { type: "set_image", uploads: { image, mask: image } })).toMatchObject({
      ok: false,
      error: { code: "INVALID_COMMAND", message: expect.stringContaining("uploads.mask") },
    });
    expect(checkCommand(commands, { type: "echo", uploads: { image } })).toMatchObject({
      ok: false,
      error: { code: "INVALID_COMMAND", message: expect.stringContaining("takes no files") },
    });
    expect(checkCommand(commands, { type: "toString", data: {} })).toMatchObject({
      ok: false,
      error: { code: "UNKNOWN_COMMAND", command: "toString" },
    });
    expect(checkCommand(commands, { type: "set_prompt", data: { prompt: 7 } })).toMatchObject({
      ok: false,
      error: { type: "command_error", code: "INVALID_COMMAND", message: expect.stringContaining("data.prompt: expected string, got number") },
    });
  });

  it("VP8 over RTP: finds the first packet of a key frame, whatever the payload descriptor carries", () => {
    const rtp = (payload: number[], extension = false) => {
      const header = Buffer.from([extension ? 0x90 : 0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
      const ext = extension ? Buffer.from([0xbe, 0xde, 0, 1, 0x10, 0, 0, 0]) : Buffer.alloc(0);
      return Buffer.concat([header, ext, Buffer.from(payload)]);
    };
    const key = (packet: Buffer) => startsVp8KeyFrame(packet, rtpFields(packet)!.payloadOffset);
    expect(rtpFields(rtp([0x10, 0x00]))).toEqual({ ssrc: 3, sequenceNumber: 1, timestamp: 2, payloadOffset: 12 });
    expect(key(rtp([0x10, 0x00]))).toBe(true); // S=1 PID=0, no extension, P=0
    expect(key(rtp([0x90, 0x80, 0x05, 0x00]))).toBe(true); // ffmpeg's: X, I, 7-bit picture id
    expect(key(rtp([0x90, 0x80, 0x85, 0x05, 0x00]))).toBe(true); // 15-bit picture id (M=1)
    expect(key(rtp([0x90, 0xe0, 0x05, 0x07, 0x20, 0x00]))).toBe(true); // I, L, T: picture id, TL0PICIDX, TID
    expect(key(rtp([0x90, 0x80, 0x05, 0x01]))).toBe(false); // P=1: an inter frame
    expect(key(rtp([0x80, 0x80, 0x05, 0x00]))).toBe(false); // S=0: not the start of a frame
    expect(key(rtp([0x11, 0x00]))).toBe(false); // PID=1: not partition 0
    expect(key(rtp([0x10, 0x00], true))).toBe(true); // behind an RTP header extension
    expect(rtpFields(Buffer.from([0x40, 0, 0]))).toBeUndefined();
  });

  it("data channel envelopes are checked before anything reads them", () => {
    expect(decodeEnvelope(Buffer.from("{}"))).toEqual({ ok: false, error: expect.objectContaining({ message: "binary messages are not accepted" }) });
    expect(decodeEnvelope("{")).toEqual({ ok: false, error: expect.objectContaining({ message: "not JSON" }) });
    expect(decodeEnvelope(JSON.stringify({ scope: "admin", data: { type: "x" } }))).toMatchObject({
      ok: false,
      error: { message: expect.stringContaining("$.scope") },
    });
    expect(decodeEnvelope(JSON.stringify({ scope: "application", data: { type: "echo", data: { a: 1 } } }))).toEqual({
      ok: true,
      value: { scope: "application", data: { type: "echo", data: { a: 1 } } },
    });
  });

  it("a refused envelope carries the frame code that fits: binary, too large, not JSON, not the schema", () => {
    const code = (raw: string | Buffer) => {
      const decoded = decodeEnvelope(raw);
      return decoded.ok ? undefined : decoded.error.code;
    };
    expect(code(Buffer.from("{}"))).toBe("FRAME_UNSUPPORTED");
    expect(code(`"${"x".repeat(300 * 1024)}"`)).toBe("FRAME_TOO_LARGE");
    expect(code("{")).toBe("FRAME_MALFORMED");
    expect(code(JSON.stringify({ scope: "admin", data: { type: "x" } }))).toBe("FRAME_INVALID");
  });
});
