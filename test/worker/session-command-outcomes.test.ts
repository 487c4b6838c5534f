/**
 * Every command's final state reaches the client, exactly: a seq dropped (buffer full, `drop` policy, a refused
 * FileRef) or replaced is never covered by a later acknowledgement, and a client whose socket died before a
 * `command_status` learns it on its next socket (the gateway tells a new socket the state of every seq the client
 * has not said it saw settled, `commands_seen`). The client side is the SDK's own CommandQueue.
 */
import { describe, expect, it } from "vitest";
import type { ClientFrame } from "../../protocol/signaling.ts";
import { CommandQueue, type CommandHandle } from "../../sdk/src/command-queue.ts";
import {
  activeNativeSession,
  freshModel,
  isStatus,
  negotiate,
  openSignal,
  ScriptedRuntime,
  type ClientAccount,
  type Frame,
  type Peer,
} from "./scripted.ts";

/** The SDK's queue on a scripted socket: frames go out on it, `command_status` frames come back into it. */
class SdkCommands {
  readonly queue = new CommandQueue();
  signal: Peer | undefined;

  /** A new socket: statuses up to its welcome's first `status` are applied, then the queue attaches. */
  async connect(client: ClientAccount, sessionId: string): Promise<Peer> {
    const signal = await openSignal(client, sessionId);
    const welcome = await signal.next("welcome");
    this.signal = signal;
    this.take(await signal.sync()); // the welcome's status and any replayed command_status
    this.queue.attach((frame: ClientFrame) => {
      if (signal.closed) return false;
      signal.send(frame);
      return true;
    }, welcome.next_command_seq as number);
    return signal;
  }

  /** Applies the command_status frames among `frames`. */
  take(frames: Frame[]): void {
    for (const frame of frames) {
      if (frame.type === "command_status") this.queue.onStatus(frame.seq as number, frame.state as never, frame.error as string | undefined);
    }
  }

  /** The socket dies with everything it had not processed. */
  drop(): void {
    this.signal!.close(4001, "network lost");
    this.signal!.frames.length = 0;
    this.queue.detach();
  }
}

const submit = (sdk: SdkCommands, n: number, policy: "buffer" | "drop" = "buffer"): CommandHandle[] =>
  Array.from({ length: n }, (_, i) => sdk.queue.submit("set_prompt", { i }, policy));

/** Processes client frames until every handle is final. */
async function settle(sdk: SdkCommands, handles: CommandHandle[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (handles.some((handle) => !["acknowledged", "dropped", "replaced"].includes(handle.state))) {
    if (Date.now() > deadline)
      throw new Error(
        `not settled: ${handles
          .filter((h) => h.state === "waiting" || h.state === "delivered")
          .map((h) => h.seq)
          .join(",")}`,
      );
    sdk.take(await sdk.signal!.sync());
  }
}

/** Acknowledges every command the runtime gets, as it gets them; returns the seqs it got, in order. */
function ackAll(runtimePeer: Peer, seen: number[]): void {
  runtimePeer.ws.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data as string) as Frame;
    if (frame.type !== "command") return;
    seen.push(frame.seq as number);
    runtimePeer.send({ type: "command_ack", seq: frame.seq });
  });
}

describe("dropped commands are never reported acknowledged", () => {
  it("buffer overflow while the runtime is away, socket dead before the statuses: the next socket says 257–260 were dropped", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);
    await runtime.dropSession(sessionId);
    await signal.next(isStatus("RECONNECTING"));

    const sdk = new SdkCommands();
    sdk.signal = signal;
    sdk.queue.attach((frame) => {
      signal.send(frame);
      return true;
    }, 1);
    const handles = submit(sdk, 260);
    // The gateway took all 260 (the last one's status proves it); the socket dies before the client reads any.
    await signal.takeUntil((frame) => frame.type === "command_status" && frame.seq === 260);
    sdk.drop();
    expect(handles.every((handle) => handle.state === "waiting")).toBe(true);

    const again = await sdk.connect(client, sessionId);
    expect(handles.slice(256).map((handle) => [handle.seq, handle.state, handle.error])).toEqual(
      [257, 258, 259, 260].map((seq) => [seq, "dropped", "COMMAND_BUFFER_FULL"]),
    );

    // The runtime returns; a new command is acknowledged, and so is everything buffered, each by its own status.
    const back = await runtime.openSession(sessionId);
    const got: number[] = [];
    ackAll(back, got);
    await negotiate(again, back, 2);
    const later = submit(sdk, 1);
    expect(later[0]!.seq).toBe(261);
    await settle(sdk, [...handles, ...later]);
    expect(handles.slice(0, 256).every((handle) => handle.state === "acknowledged")).toBe(true);
    expect(handles.slice(256).every((handle) => handle.state === "dropped")).toBe(true);
    expect(later[0]!.state).toBe("acknowledged");
    expect(got).toEqual([...Array.from({ length: 256 }, (_, i) => i + 1), 261]);
  });

  it("drop policy while away: the drop's status is lost with the socket, the next socket carries it; a later ack does not cover it", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal } = await activeNativeSession(model, runtime);
    await runtime.dropSession(sessionId);
    await signal.next(isStatus("RECONNECTING"));
    const sdk = new SdkCommands();
    sdk.signal = signal;
    sdk.queue.attach((frame) => {
      signal.send(frame);
      return true;
    }, 1);
    const [first] = submit(sdk, 1);
    const [dropped] = submit(sdk, 1, "drop");
    const [third] = submit(sdk, 1);
    await signal.takeUntil((frame) => frame.type === "command_status" && frame.seq === 3);
    sdk.drop();

    const again = await sdk.connect(client, sessionId);
    expect([dropped!.state, dropped!.error]).toEqual(["dropped", "COMMAND_DROPPED"]);
    const back = await runtime.openSession(sessionId);
    ackAll(back, []);
    await negotiate(again, back, 2);
    await settle(sdk, [first!, dropped!, third!]);
    expect([first!.state, dropped!.state, third!.state]).toEqual(["acknowledged", "dropped", "acknowledged"]);
  });

  it("the SDK never takes a cumulative ack for a seq it has no state for", () => {
    const queue = new CommandQueue();
    const sent: ClientFrame[] = [];
    queue.attach((frame) => {
      sent.push(frame);
      return true;
    }, 1);
    const [a, b, c] = submit({ queue } as SdkCommands, 3);
    queue.onStatus(1, "delivered");
    queue.onStatus(3, "delivered");
    queue.onStatus(3, "acknowledged");
    // 1 was delivered: the runtime acknowledges in order, so it is done. 2's state is unknown: it waits for its own.
    expect([a!.state, b!.state, c!.state]).toEqual(["acknowledged", "waiting", "acknowledged"]);
    expect(sent.filter((frame) => frame.type === "commands_seen")).toEqual([]);
    queue.onStatus(2, "dropped", "COMMAND_BUFFER_FULL");
    expect(b!.state).toBe("dropped");
    expect(sent.filter((frame) => frame.type === "commands_seen")).toEqual([{ type: "commands_seen", seq: 3 }]);
  });

  it("commands_seen: states the client has seen are not told again; those after it are", async () => {
    const model = freshModel();
    const runtime = await new ScriptedRuntime(model, "gpu-1", 1).connect();
    const { client, sessionId, signal, runtimePeer } = await activeNativeSession(model, runtime);
    ackAll(runtimePeer, []);
    const sdk = new SdkCommands();
    sdk.signal = signal;
    sdk.queue.attach((frame) => {
      signal.send(frame);
      return true;
    }, 1);
    const handles = submit(sdk, 3);
    await settle(sdk, handles);
    expect(sdk.queue.settledThrough).toBe(3);
    await signal.sync(); // commands_seen 3 has arrived
    sdk.drop();
    await runtime.dropSession(sessionId);
    const again = await openSignal(client, sessionId);
    await again.next("welcome");
    expect((await again.sync()).filter((frame) => frame.type === "command_status")).toEqual([]);
    // A command taken while the runtime is away, its status lost: told again, as waiting, to the next socket.
    again.send({ type: "command", seq: 4, command: { type: "set_prompt", data: {} } });
    await again.sync();
    again.close(4001, "lost");
    const third = await openSignal(client, sessionId);
    await third.next("welcome");
    expect((await third.sync()).filter((frame) => frame.type === "command_status")).toEqual([{ type: "command_status", seq: 4, state: "waiting" }]);
  });
});
