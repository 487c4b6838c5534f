/**
 * The session's two sockets (the native client's signaling socket, the runtime's session socket): adopting a new
 * one (which replaces the old), finding the current one again after hibernation, sends, and error frames.
 *
 * Hibernation-safe: which socket is current is in the session record (`clientSocket`, `runtimeSocket`), per-socket
 * facts in each socket's attachment. The map here is only a cache of that lookup, rebuilt after a wake-up.
 */
import { ERROR_CODES, type ErrorCode } from "../../protocol/errors.ts";
import type { ServerFrame } from "../../protocol/signaling.ts";
import { sendIfOpen } from "../sockets.ts";
import type { GatewayFrame, LiveSocket, Role, SessionRecord, SocketAttachment } from "./record.ts";

export class SocketLinks {
  /** Sockets in use, remembered so a send costs no lookup; rebuilt from the attachments after hibernation. */
  readonly #live = new Map<Role, LiveSocket>();

  readonly #ctx: DurableObjectState;
  readonly #record: () => SessionRecord;

  constructor(ctx: DurableObjectState, record: () => SessionRecord) {
    this.#ctx = ctx;
    this.#record = record;
  }

  /** Accepts `ws` as the current socket of `role`; the one it replaces is closed (its close event will not count). */
  adopt(ws: WebSocket, role: Role, extra: Partial<SocketAttachment> = {}): void {
    const session = this.#record();
    const connection = ++session.connections;
    const previous = this.socket(role);
    this.#ctx.acceptWebSocket(ws, [role]);
    ws.serializeAttachment({ ...extra, role, connection } satisfies SocketAttachment);
    if (role === "client") session.clientSocket = connection;
    else session.runtimeSocket = connection;
    previous?.close(4000, "replaced by a newer connection");
  }

  /** The current socket of `role`: found among the hibernatable sockets once after a wake-up, then remembered. */
  socket(role: Role): WebSocket | undefined {
    return this.current(role)?.ws;
  }

  current(role: Role): LiveSocket | undefined {
    const session = this.#record();
    const current = role === "client" ? session.clientSocket : session.runtimeSocket;
    if (current === null) return undefined;
    const known = this.#live.get(role);
    if (known?.connection === current) return known;
    for (const ws of this.#ctx.getWebSockets(role)) {
      const attachment = ws.deserializeAttachment() as SocketAttachment | null;
      if (attachment?.connection !== current) continue;
      const live = { ws, connection: current, greeted: !attachment.awaitingHello, sentFromMemory: attachment.sentFromMemory === true };
      this.#live.set(role, live);
      return live;
    }
    return undefined;
  }

  /** The runtime socket said hello: it is the runtime from now on (the attachment says so after a wake-up too). */
  greet(ws: WebSocket): void {
    const { awaitingHello: _greetedNow, ...attachment } = ws.deserializeAttachment() as SocketAttachment;
    ws.serializeAttachment(attachment satisfies SocketAttachment);
    this.#live.set("runtime", { ws, connection: attachment.connection, greeted: true, sentFromMemory: false });
  }

  /** The current runtime socket once it has said hello. */
  greetedRuntime(): WebSocket | undefined {
    const live = this.current("runtime");
    return live?.greeted ? live.ws : undefined;
  }

  /** The runtime is up once it has said hello on its current session socket. */
  runtimeUp(): boolean {
    return this.greetedRuntime() !== undefined;
  }

  /** Notes on the client's socket that it was sent messages kept only in memory (once per socket). */
  markSentFromMemory(): void {
    const live = this.current("client");
    if (!live || live.sentFromMemory) return;
    live.sentFromMemory = true;
    const attachment = live.ws.deserializeAttachment() as SocketAttachment;
    live.ws.serializeAttachment({ ...attachment, sentFromMemory: true } satisfies SocketAttachment);
  }

  toClient(frame: ServerFrame): void {
    this.rawToClient(JSON.stringify(frame));
  }

  rawToClient(frame: string): void {
    const ws = this.socket("client");
    if (ws) sendIfOpen(ws, frame);
  }

  /** Nothing goes to a runtime socket before its hello: the hello answer (`session`, then resends) comes first. */
  toRuntime(frame: GatewayFrame): void {
    const ws = this.greetedRuntime();
    if (ws) sendIfOpen(ws, JSON.stringify(frame));
  }
}

/** The client protocol's error frame; recoverable codes say when to try again. */
export function errorFrame(code: ErrorCode, message?: string, ref?: unknown): string {
  const { recoverable, message: fallback } = ERROR_CODES[code];
  return JSON.stringify({
    type: "error",
    code,
    message: message ?? fallback,
    recoverable,
    ...(recoverable && { retry_after: 1 }),
    ...(ref !== undefined && { ref }),
  } satisfies ServerFrame);
}

export function sendError(ws: WebSocket, code: ErrorCode, message?: string, ref?: unknown): void {
  sendIfOpen(ws, errorFrame(code, message, ref));
}

export function sendRuntimeError(ws: WebSocket, code: ErrorCode, message?: string, ref?: unknown): void {
  sendIfOpen(
    ws,
    JSON.stringify({ type: "error", code, message: message ?? ERROR_CODES[code].message, ...(ref !== undefined && { ref }) } satisfies GatewayFrame),
  );
}
