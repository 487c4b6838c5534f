/**
 * One Durable Object per model: the runtimes serving it, their slots, and the FIFO queue of sessions waiting for
 * a slot. Runtimes hold a control socket here (registration, capacity, heartbeats, assignments); the media
 * signaling of each session goes over a separate socket straight to that session's object, so this object never
 * sits on the relay path.
 *
 * One code path assigns: `#drain()` hands free slots to the head of the queue, whether the slot was just freed or
 * the session just arrived. A session that gets a slot as it arrives has it in `enqueue`'s answer; every other
 * assignment is offered to its waiting session by calling its `assign`.
 *
 * The pool also keeps its model's row in the D1 model directory (GET /v1/models): listed while at least one runtime
 * is connected.
 */
import { DurableObject } from "cloudflare:workers";
import type { Capabilities } from "../../protocol/common.ts";
import { decodeFrame } from "../../protocol/frames.ts";
import { sessionSettings, type SessionSettings } from "../../src/config.ts";
import { ApiError } from "../../src/errors.ts";
import { listModel, unlistModel } from "../../src/models/directory.ts";
import { sessionRelay, type PoolSnapshot } from "../../src/objects.ts";
import { HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE, RuntimeControlFrame, type PoolFrame } from "../../protocol/runtime.ts";
import { Clock } from "../clock.ts";
import { completeClose, sendIfOpen } from "../sockets.ts";

export interface Assignment {
  runtimeId: string;
  modelVersion?: string;
  capabilities: Capabilities;
}

export type { PoolSnapshot } from "../../src/objects.ts";

interface ControlAttachment {
  runtimeId: string | null;
  connection: number;
  acceptedAt: number;
}

/** A free slot set aside for a queued session, before the session has taken it. */
interface Reservation {
  sessionId: string;
  connection: number;
  assignment: Assignment;
}

type RuntimeRow = {
  id: string;
  model_version: string | null;
  capabilities: string;
  slots: number;
  connected: number;
  connection: number;
  disconnected_at: number | null;
};

/** Sessions told their queue position after each change; the rest learn it when they ask. */
const POSITION_PUSH_LIMIT = 50;
const MODEL_KEY = "model";
/** Whether the D1 directory lists this model, as last written. */
const LISTED_KEY = "listed";

export class ModelPool extends DurableObject<Env> {
  readonly #settings: SessionSettings;
  readonly #clock: Clock;
  readonly #sql: SqlStorage;
  #connections: number;
  /** Serializes `#drain` so two callers never hand out the same slot. */
  #draining: Promise<void> = Promise.resolve();
  /** Serializes directory writes, so the last one written matches the last change. */
  #directoryWrites: Promise<void> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#settings = sessionSettings(env);
    this.#clock = new Clock(ctx.storage, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`
      CREATE TABLE IF NOT EXISTS runtimes (
        id TEXT PRIMARY KEY,
        model_version TEXT,
        capabilities TEXT NOT NULL,
        slots INTEGER NOT NULL,
        connected INTEGER NOT NULL,
        connection INTEGER NOT NULL,
        disconnected_at INTEGER
      );
      CREATE TABLE IF NOT EXISTS assignments (
        session_id TEXT PRIMARY KEY,
        runtime_id TEXT NOT NULL,
        assigned_at INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS assignments_by_runtime ON assignments(runtime_id);
      CREATE TABLE IF NOT EXISTS queue (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL UNIQUE,
        enqueued_at INTEGER NOT NULL
      );
    `);
    this.#connections = ctx.storage.kv.get<number>("connections") ?? 0;
    // Heartbeats are answered by the runtime itself without waking this object; the alarm reads their timestamps.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE));
  }

  // ── RPC from session objects ───────────────────────────────────────────────────────────────────────────────

  /**
   * Queues a session. Returns its position (null once it holds a slot), how many runtimes are connected (0: the
   * session waits for a runtime, not for a slot), and its assignment if it got a slot right away (or had one: a
   * repeated call): the session takes it from this answer, not from a call back into it while it awaits this one.
   */
  async enqueue(sessionId: string): Promise<{ position: number | null; runtimes: number; assignment?: Assignment }> {
    let assignment = this.#assignmentOf(sessionId);
    if (!assignment) {
      this.#sql.exec("INSERT OR IGNORE INTO queue (session_id, enqueued_at) VALUES (?, ?)", sessionId, this.#clock.now());
      assignment = await this.#drain(sessionId);
    }
    return { position: this.#position(sessionId), runtimes: this.#connectedRuntimes(), ...(assignment && { assignment }) };
  }

  /**
   * The session no longer needs its slot or queue place. Returns how many runtimes are connected now (0: a session
   * that waited in vain waited for a runtime, `no_runtime`, not for a slot, `no_capacity`).
   */
  async release(sessionId: string): Promise<{ runtimes: number }> {
    this.#sql.exec("DELETE FROM queue WHERE session_id = ?", sessionId);
    const freed = this.#sql.exec("DELETE FROM assignments WHERE session_id = ? RETURNING runtime_id", sessionId).toArray();
    if (freed.length > 0) await this.#drain();
    else this.#pushPositions();
    return { runtimes: this.#connectedRuntimes() };
  }

  async snapshot(): Promise<PoolSnapshot> {
    await this.#forgetVanishedRuntimes();
    const runtimes = this.#sql
      .exec<RuntimeRow & { busy: number }>(
        `SELECT r.*, (SELECT count(*) FROM assignments a WHERE a.runtime_id = r.id) AS busy FROM runtimes r ORDER BY r.id`,
      )
      .toArray();
    const connected = runtimes.filter((runtime) => runtime.connected);
    return {
      model: this.ctx.storage.kv.get<string>(MODEL_KEY) ?? "",
      runtimes: runtimes.map(({ id, model_version, slots, busy, connected }) => ({
        id,
        model_version,
        slots,
        busy,
        connected: connected === 1,
      })),
      capabilities: connected[0] ? (JSON.parse(connected[0].capabilities) as Capabilities) : null,
      free_slots: connected.reduce((sum, runtime) => sum + Math.max(0, runtime.slots - runtime.busy), 0),
      queue_length: this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM queue").one().n,
    };
  }

  // ── The runtime's control socket ─────────────────────────────────────────────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new ApiError("WEBSOCKET_REQUIRED").toResponse();
    const model = new URL(request.url).searchParams.get("model") ?? "";
    this.ctx.storage.kv.put(MODEL_KEY, model);
    const [runtime, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    this.#connections++;
    this.ctx.storage.kv.put("connections", this.#connections);
    server.serializeAttachment({ runtimeId: null, connection: this.#connections, acceptedAt: Date.now() } satisfies ControlAttachment);
    await this.#scheduleAlarm();
    return new Response(null, { status: 101, webSocket: runtime });
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const attachment = ws.deserializeAttachment() as ControlAttachment;
    const decoded = decodeFrame(RuntimeControlFrame, raw);
    if (!decoded.ok) return send(ws, { type: "error", code: decoded.error.code, message: decoded.error.message });
    const frame = decoded.value;
    if (frame.type === "register") {
      if (attachment.runtimeId !== null) {
        // A socket registers once; a replayed register would otherwise replace (close) its own socket.
        return send(ws, { type: "error", code: "FRAME_INVALID", message: `This socket is already registered as ${attachment.runtimeId}.` });
      }
      const model = this.ctx.storage.kv.get<string>(MODEL_KEY);
      if (frame.model.name !== model) {
        return send(ws, { type: "error", code: "FRAME_INVALID", message: `This socket serves model ${model}, not ${frame.model.name}.` });
      }
      await this.#register(ws, attachment, frame);
      return;
    }
    if (attachment.runtimeId === null) return send(ws, { type: "error", code: "FRAME_INVALID", message: "Send register first." });
    this.#sql.exec("UPDATE runtimes SET slots = ? WHERE id = ?", frame.slots, attachment.runtimeId);
    await this.#drain();
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    completeClose(ws, code, reason);
    await this.#disconnected(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.#disconnected(ws);
  }

  /** Heartbeat watchdog and purge of runtimes that stayed away longer than the grace window. */
  override async alarm(): Promise<void> {
    await this.#forgetVanishedRuntimes();
    const now = Date.now();
    const silenceLimit = this.#settings.heartbeatIntervalMs * 3;
    for (const ws of this.ctx.getWebSockets()) {
      const attachment = ws.deserializeAttachment() as ControlAttachment;
      const lastHeard = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? attachment.acceptedAt;
      if (now - Math.max(lastHeard, attachment.acceptedAt) > silenceLimit) {
        ws.close(4008, "heartbeat timeout");
        await this.#disconnected(ws);
      }
    }
    const purgeBefore = this.#clock.now() - this.#settings.graceMs - 5000;
    const gone = this.#sql
      .exec<{ id: string }>("DELETE FROM runtimes WHERE connected = 0 AND disconnected_at <= ? RETURNING id", purgeBefore)
      .toArray();
    for (const { id } of gone) {
      const orphans = this.#sql.exec<{ session_id: string }>("DELETE FROM assignments WHERE runtime_id = ? RETURNING session_id", id).toArray();
      for (const { session_id } of orphans) void this.#session(session_id).runtimeLost("runtime_lost").catch(logError);
    }
    await this.#syncDirectory(); // retries a write that failed
    await this.#scheduleAlarm();
  }

  // ── Internals ─────────────────────────────────────────────────────────────────────────────────────────────────

  async #register(ws: WebSocket, attachment: ControlAttachment, frame: Extract<RuntimeControlFrame, { type: "register" }>): Promise<void> {
    const runtimeId = frame.runtime_id;
    const previous = this.#sql.exec<RuntimeRow>("SELECT * FROM runtimes WHERE id = ?", runtimeId).toArray()[0];
    if (previous?.connected) this.#controlSocket(previous.connection)?.close(4000, "replaced by a newer connection");
    this.#sql.exec(
      `INSERT INTO runtimes (id, model_version, capabilities, slots, connected, connection, disconnected_at)
       VALUES (?, ?, ?, ?, 1, ?, NULL)
       ON CONFLICT (id) DO UPDATE SET model_version = excluded.model_version, capabilities = excluded.capabilities,
         slots = excluded.slots, connected = 1, connection = excluded.connection, disconnected_at = NULL`,
      runtimeId,
      frame.model.version ?? null,
      JSON.stringify(frame.capabilities),
      frame.slots,
      attachment.connection,
    );
    ws.serializeAttachment({ ...attachment, runtimeId } satisfies ControlAttachment);
    // Listed before `registered`: a runtime that was told it is registered shows up in GET /v1/models.
    await this.#syncDirectory();
    send(ws, { type: "registered", runtime_id: runtimeId, heartbeat_interval_ms: this.#settings.heartbeatIntervalMs });

    // A runtime that comes back without some of its sessions (it restarted) has lost them: end them now rather
    // than letting them wait out the grace window.
    const kept = new Set(frame.sessions ?? []);
    const assigned = this.#sql.exec<{ session_id: string }>("SELECT session_id FROM assignments WHERE runtime_id = ?", runtimeId).toArray();
    for (const { session_id } of assigned) {
      if (kept.has(session_id)) continue;
      this.#sql.exec("DELETE FROM assignments WHERE session_id = ?", session_id);
      void this.#session(session_id).runtimeLost("runtime_restarted").catch(logError);
    }
    await this.#drain();
    await this.#scheduleAlarm();
  }

  async #disconnected(ws: WebSocket): Promise<void> {
    const attachment = ws.deserializeAttachment() as ControlAttachment | null;
    if (!attachment?.runtimeId) return;
    // Its sessions keep their slots through the grace window: the runtime may come back and resume them.
    this.#sql.exec(
      "UPDATE runtimes SET connected = 0, disconnected_at = ? WHERE id = ? AND connection = ?",
      this.#clock.now(),
      attachment.runtimeId,
      attachment.connection,
    );
    await this.#syncDirectory();
    this.#pushPositions(); // the last runtime leaving turns the queue's reason into no_runtime_connected
    await this.#scheduleAlarm();
  }

  /**
   * Runtimes marked connected whose control socket is gone without a close event (the object restarted: a deploy,
   * or a local `wrangler dev` restart) are disconnected now, as if their socket had just closed.
   */
  async #forgetVanishedRuntimes(): Promise<void> {
    const live = new Set(this.ctx.getWebSockets().map((ws) => (ws.deserializeAttachment() as ControlAttachment).connection));
    const connected = this.#sql.exec<{ id: string; connection: number }>("SELECT id, connection FROM runtimes WHERE connected = 1").toArray();
    const vanished = connected.filter((runtime) => !live.has(runtime.connection));
    if (vanished.length === 0) return;
    for (const { id } of vanished) {
      this.#sql.exec("UPDATE runtimes SET connected = 0, disconnected_at = ? WHERE id = ?", this.#clock.now(), id);
    }
    await this.#syncDirectory();
    await this.#scheduleAlarm();
  }

  /**
   * Keeps this model's row in the D1 directory in step with whether any runtime is connected: written when the
   * first runtime connects and when the last one leaves, not on every heartbeat. Writes run one at a time and read
   * the state when they run; a failed write is logged and retried by the next call (the alarm calls too).
   */
  #syncDirectory(): Promise<void> {
    this.#directoryWrites = this.#directoryWrites.then(() => this.#writeDirectory()).catch(logError);
    return this.#directoryWrites;
  }

  async #writeDirectory(): Promise<void> {
    const model = this.ctx.storage.kv.get<string>(MODEL_KEY);
    if (!model) return;
    const listed = this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM runtimes WHERE connected = 1").one().n > 0;
    if ((this.ctx.storage.kv.get<boolean>(LISTED_KEY) ?? false) === listed) return;
    await (listed ? listModel(this.env.DB, model, this.#clock.now()) : unlistModel(this.env.DB, model));
    this.ctx.storage.kv.put(LISTED_KEY, listed);
  }

  /** `arriving`: the session being enqueued, whose slot (if it gets one) is returned rather than offered to it. */
  #drain(arriving?: string): Promise<Assignment | undefined> {
    const run = this.#draining.then(() => this.#assignFreeSlots(arriving));
    this.#draining = run.then(() => undefined, logError);
    return run;
  }

  /**
   * Hands every free slot to the head of the queue at once: all pairs are reserved in one synchronous step, then
   * offered to their sessions concurrently (a burst of arrivals costs one round of calls, not one per session).
   * Sessions that decline free their slot, and the next round offers it to whoever is next.
   */
  async #assignFreeSlots(arriving?: string): Promise<Assignment | undefined> {
    await this.#forgetVanishedRuntimes();
    let arrived: Assignment | undefined;
    for (;;) {
      const reserved = this.#reserveFreeSlots();
      if (reserved.length === 0) break;
      const accepted = await Promise.all(
        reserved.map(async (reservation) => {
          if (reservation.sessionId !== arriving) return this.#offer(reservation);
          // Taken by the arriving session from enqueue's answer (it still wants one: it is awaiting it).
          arrived = reservation.assignment;
          this.#tellRuntime(reservation);
          return true;
        }),
      );
      if (accepted.every(Boolean)) break;
    }
    this.#pushPositions();
    return arrived;
  }

  /** Pairs queued sessions, oldest first, with free slots, fullest-free runtime first; reserves them in storage. */
  #reserveFreeSlots(): Reservation[] {
    const runtimes = this.#sql
      .exec<RuntimeRow & { free: number }>(
        `SELECT r.*, r.slots - (SELECT count(*) FROM assignments a WHERE a.runtime_id = r.id) AS free
         FROM runtimes r WHERE r.connected = 1 AND free > 0 ORDER BY r.id`,
      )
      .toArray();
    const freeSlots = runtimes.reduce((sum, runtime) => sum + runtime.free, 0);
    if (freeSlots === 0) return [];
    const heads = this.#sql.exec<{ session_id: string }>("SELECT session_id FROM queue ORDER BY position LIMIT ?", freeSlots).toArray();
    const now = this.#clock.now();
    return heads.map(({ session_id: sessionId }) => {
      // Spread the load: each session goes to the runtime with the most free slots (ties: the lowest id).
      const runtime = runtimes.reduce((best, candidate) => (candidate.free > best.free ? candidate : best));
      runtime.free--;
      this.#sql.exec("DELETE FROM queue WHERE session_id = ?", sessionId);
      this.#sql.exec("INSERT INTO assignments (session_id, runtime_id, assigned_at) VALUES (?, ?, ?)", sessionId, runtime.id, now);
      return { sessionId, connection: runtime.connection, assignment: assignmentOn(runtime) };
    });
  }

  /** Offers a reserved slot to its session; tells the runtime if the session takes it, frees the slot if not. */
  async #offer({ sessionId, connection, assignment }: Reservation): Promise<boolean> {
    let accepted = false;
    try {
      accepted = await this.#session(sessionId).assign(assignment);
    } catch (error) {
      logError(error);
    }
    if (!accepted) {
      this.#sql.exec("DELETE FROM assignments WHERE session_id = ?", sessionId);
      return false;
    }
    this.#tellRuntime({ sessionId, connection, assignment });
    return true;
  }

  #tellRuntime({ sessionId, connection }: Reservation): void {
    const socket = this.#controlSocket(connection);
    if (socket) send(socket, { type: "assign", session_id: sessionId });
  }

  /** The slot `sessionId` holds, if any. */
  #assignmentOf(sessionId: string): Assignment | undefined {
    const [runtime] = this.#sql
      .exec<RuntimeRow>("SELECT r.* FROM assignments a JOIN runtimes r ON r.id = a.runtime_id WHERE a.session_id = ?", sessionId)
      .toArray();
    return runtime && assignmentOn(runtime);
  }

  #pushPositions(): void {
    const waiting = this.#sql.exec<{ session_id: string }>("SELECT session_id FROM queue ORDER BY position LIMIT ?", POSITION_PUSH_LIMIT).toArray();
    if (waiting.length === 0) return;
    const runtimes = this.#connectedRuntimes();
    waiting.forEach(
      ({ session_id }, index) =>
        void this.#session(session_id)
          .queuePosition(index + 1, runtimes)
          .catch(logError),
    );
  }

  #connectedRuntimes(): number {
    return this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM runtimes WHERE connected = 1").one().n;
  }

  /** 1-based place in the queue, or null if the session is not queued (assigned, or unknown). */
  #position(sessionId: string): number | null {
    const row = this.#sql
      .exec<{ ahead: number | null }>(
        "SELECT (SELECT count(*) FROM queue q2 WHERE q2.position < q1.position) AS ahead FROM queue q1 WHERE q1.session_id = ?",
        sessionId,
      )
      .toArray()[0];
    return row ? (row.ahead ?? 0) + 1 : null;
  }

  #controlSocket(connection: number): WebSocket | undefined {
    return this.ctx.getWebSockets().find((ws) => (ws.deserializeAttachment() as ControlAttachment).connection === connection);
  }

  #session(sessionId: string) {
    return sessionRelay(this.env, sessionId);
  }

  async #scheduleAlarm(): Promise<void> {
    const connected = this.ctx.getWebSockets().length > 0;
    const firstDisconnect = this.#sql.exec<{ at: number | null }>("SELECT min(disconnected_at) AS at FROM runtimes WHERE connected = 0").one().at;
    const times: number[] = [];
    if (connected) times.push(Date.now() + this.#settings.heartbeatIntervalMs);
    if (firstDisconnect !== null) times.push(Date.now() + Math.max(0, firstDisconnect + this.#settings.graceMs + 5000 - this.#clock.now()));
    if (times.length === 0) return this.ctx.storage.deleteAlarm();
    const at = Math.min(...times);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}

function send(ws: WebSocket, frame: PoolFrame): void {
  sendIfOpen(ws, JSON.stringify(frame));
}

function logError(error: unknown): void {
  console.error("model pool:", error instanceof Error ? error.message : String(error));
}

function assignmentOn(runtime: RuntimeRow): Assignment {
  return {
    runtimeId: runtime.id,
    ...(runtime.model_version !== null && { modelVersion: runtime.model_version }),
    capabilities: JSON.parse(runtime.capabilities) as Capabilities,
  };
}
