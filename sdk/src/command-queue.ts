/**
 * Commands for the model, delivered through the gateway exactly once and in order.
 *
 * A command gets its seq when it is first put on a welcomed socket (seqs run 1, 2, 3… without gaps, as the gateway
 * requires). While there is no socket, commands wait here and their `whileWaiting` policy applies at once: `drop`
 * drops, `replace` replaces the waiting ones of the same type, `buffer` keeps. With a socket, the gateway applies the
 * policy (it knows whether the session is ready). After a reconnect, everything from `welcome.next_command_seq` on
 * is sent again, in order. Each command's handle follows the gateway's `command_status`.
 */
import { COMMAND_POLICIES, LIMITS, type Command, type CommandPolicy, type CommandState, type FileRef } from "../../protocol/common.ts";
import type { ClientFrame } from "../../protocol/signaling.ts";
import { Emitter } from "./emitter.ts";

export type { CommandPolicy, CommandState };
export { COMMAND_POLICIES };

const RANK: Record<CommandState, number> = { waiting: 0, delivered: 1, acknowledged: 2, dropped: 2, replaced: 2 };
export const isFinal = (state: CommandState) => RANK[state] === 2;

type Update = (state: CommandState, error?: string) => void;

export class CommandHandle {
  readonly type: string;
  readonly policy: CommandPolicy;
  /** Resolves with the final state: `acknowledged`, `dropped` or `replaced`. Never rejects. */
  readonly done: Promise<CommandState>;
  #state: CommandState = "waiting";
  #seq: number | undefined;
  #error: string | undefined;
  readonly #events = new Emitter<{ stateChanged: (state: CommandState, handle: CommandHandle) => void }>();

  /** `bind` receives the functions only the queue may call. */
  constructor(type: string, policy: CommandPolicy, bind: (update: Update, number: (seq: number) => void) => void) {
    this.type = type;
    this.policy = policy;
    let settle!: (state: CommandState) => void;
    this.done = new Promise((resolve) => (settle = resolve));
    bind(
      (state, error) => {
        // States only move forward; a late or repeated status changes nothing.
        if (RANK[state] <= RANK[this.#state]) return;
        this.#state = state;
        this.#error = error ?? this.#error;
        this.#events.emit("stateChanged", state, this);
        if (isFinal(state)) settle(state);
      },
      (seq) => (this.#seq = seq),
    );
  }

  get state(): CommandState {
    return this.#state;
  }

  /** The command's number on the wire, once it has been sent. */
  get seq(): number | undefined {
    return this.#seq;
  }

  /** Why it was dropped, when the gateway or the SDK says (`COMMAND_BUFFER_FULL`, `SESSION_ENDED`…). */
  get error(): string | undefined {
    return this.#error;
  }

  on(event: "stateChanged", listener: (state: CommandState, handle: CommandHandle) => void): void {
    this.#events.on(event, listener);
  }

  off(event: "stateChanged", listener: (state: CommandState, handle: CommandHandle) => void): void {
    this.#events.off(event, listener);
  }
}

interface Entry {
  handle: CommandHandle;
  update: Update;
  number: (seq: number) => void;
  seq?: number;
  frame: Command;
}

export type SendFrame = (frame: ClientFrame) => boolean;

/** `commands_seen` goes out when everything sent is settled, or when the settled point has moved this far. */
const SEEN_EVERY = 32;

export class CommandQueue {
  /** Commands not final yet: those with a seq (ascending), then those never sent (in submission order). */
  #entries: Entry[] = [];
  #nextSeq = 1;
  #send: SendFrame | undefined;
  /** The last `commands_seen` sent: the gateway tells a new socket the state of every seq after it. */
  #seenSent = 0;

  submit(type: string, data: unknown, policy: CommandPolicy, uploads?: Record<string, FileRef>): CommandHandle {
    const entry = this.#entry(type, data, policy, uploads);
    if (this.#send) {
      this.#entries.push(entry);
      this.#transmit(entry);
    } else {
      this.#holdWhileAway(entry);
    }
    return entry.handle;
  }

  /** A handle that is dropped from the start (no session to send it to). */
  refuse(type: string, policy: CommandPolicy, error: string): CommandHandle {
    const entry = this.#entry(type, undefined, policy);
    entry.update("dropped", error);
    return entry.handle;
  }

  /** A welcomed socket: send again what the gateway lacks, then what never went out, in order. */
  attach(send: SendFrame, nextCommandSeq: number): void {
    this.#send = send;
    if (nextCommandSeq > this.#nextSeq) this.#nextSeq = nextCommandSeq;
    for (const entry of this.#entries) {
      if (entry.seq === undefined || entry.seq >= nextCommandSeq) this.#transmit(entry);
    }
  }

  /** The socket is gone: commands wait here until the next one. */
  detach(): void {
    this.#send = undefined;
  }

  /** The gateway expected `expected` (COMMAND_SEQ_GAP): send again from there. */
  resendFrom(expected: number): void {
    for (const entry of this.#entries) if (entry.seq !== undefined && entry.seq >= expected) this.#transmit(entry);
  }

  onStatus(seq: number, state: CommandState, error?: string): void {
    for (const entry of this.#entries) {
      if (entry.seq === seq) entry.update(state, error);
      // The runtime acknowledges cumulatively, in order: an earlier command the gateway said it *delivered* is done
      // too. Never one whose state is unknown here: it may have been dropped or replaced, and the gateway tells
      // each seq's final state (again on the next socket, if this one dies first).
      else if (state === "acknowledged" && entry.seq !== undefined && entry.seq < seq && entry.handle.state === "delivered")
        entry.update("acknowledged");
    }
    this.#prune();
    this.#sayWhatIsSeen();
  }

  /** Every seq up to this one has a final state here. */
  get settledThrough(): number {
    const open = this.#entries.find((entry) => entry.seq !== undefined);
    return open ? open.seq! - 1 : this.#nextSeq - 1;
  }

  /** Tells the gateway how far every state is known (cumulative), so it stops keeping them for a next socket. */
  #sayWhatIsSeen(): void {
    const settled = this.settledThrough;
    if (settled <= this.#seenSent) return;
    const allSettled = this.#entries.every((entry) => entry.seq === undefined);
    if (!allSettled && settled - this.#seenSent < SEEN_EVERY) return;
    if (this.#send?.({ type: "commands_seen", seq: settled })) this.#seenSent = settled;
  }

  /** The session is over: nothing still pending will be delivered. */
  dropAll(error: string): void {
    for (const entry of this.#entries) entry.update("dropped", error);
    this.#entries = [];
  }

  /** Pending commands (not final), for diagnostics. */
  get pending(): number {
    return this.#entries.length;
  }

  #entry(type: string, data: unknown, policy: CommandPolicy, uploads?: Record<string, FileRef>): Entry {
    let update!: Update;
    let number!: (seq: number) => void;
    const handle = new CommandHandle(type, policy, (u, n) => {
      update = u;
      number = n;
    });
    return { handle, update, number, frame: { type, ...(data !== undefined && { data }), ...(uploads && { uploads }) } };
  }

  #holdWhileAway(entry: Entry): void {
    const { policy, type } = entry.handle;
    if (policy === "drop") return entry.update("dropped", "COMMAND_DROPPED");
    if (policy === "replace") {
      for (const other of this.#entries) if (other.seq === undefined && other.handle.type === type) other.update("replaced");
      this.#prune();
    }
    this.#entries.push(entry);
  }

  #transmit(entry: Entry): void {
    if (entry.seq === undefined) {
      entry.seq = this.#nextSeq++;
      entry.number(entry.seq);
    }
    this.#send?.({ type: "command", seq: entry.seq, command: entry.frame, policy: entry.handle.policy });
  }

  #prune(): void {
    this.#entries = this.#entries.filter((entry) => !isFinal(entry.handle.state));
  }
}

/** Room left in a frame for the command's envelope (type, seq, policy). */
const ENVELOPE_BYTES = 1024;

/** Whether a command with this data fits in one frame; a TypeError if the data is not JSON. */
export function fitsInFrame(data: unknown): boolean {
  let json: string;
  try {
    json = JSON.stringify(data ?? null);
  } catch (error) {
    throw new TypeError(`sendCommand: data must be JSON-serializable (${String(error)})`);
  }
  const room = LIMITS.frameBytes - ENVELOPE_BYTES;
  // A UTF-16 unit takes at most 3 bytes in UTF-8: only long text needs encoding to know.
  return json.length * 3 <= room || new TextEncoder().encode(json).byteLength <= room;
}
