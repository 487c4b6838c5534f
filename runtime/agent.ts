/**
 * The program a GPU host runs next to its model. It connects out to the gateway (no inbound ports), registers the
 * model and its capabilities on the control socket, and serves each session the pool assigns to it (session.ts).
 *
 *   const agent = new RuntimeAgent({ gatewayUrl, token, model: demoModel(), slots: 2 });
 *   await agent.start();   // resolves once registered
 *   …
 *   await agent.stop();    // releases its sessions, stops every encoder
 *
 * Its control socket reconnects with jittered backoff; after a reconnect it registers again with the sessions it
 * still serves (the pool ends the others). Session sockets reconnect on their own and resume.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { HEARTBEAT_REQUEST, HEARTBEAT_RESPONSE, PoolFrame, RuntimeId, type RuntimeControlFrame } from "../protocol/runtime.ts";
import { parse } from "../protocol/schema.ts";
import type { BackoffOptions } from "../lib/backoff.ts";
import { consoleLog, type Log } from "./log.ts";
import { capabilitiesOf, type AnyModel } from "./model.ts";
import type { WebRtcOptions } from "./peer.ts";
import { ServedSession } from "./session.ts";
import { describeFailure, ManagedSocket, socketUrl, type SocketFailure } from "./socket.ts";
import { warmUpWebRtc } from "./warmup.ts";

export interface RuntimeAgentOptions {
  /** The gateway's base URL, http(s)://… */
  gatewayUrl: string;
  /** A runtime credential (`rt_…`, one of the gateway's RUNTIME_TOKENS). */
  token: string;
  model: AnyModel;
  /** Sessions served at once. */
  slots: number;
  /** Stable across restarts if given; default `<hostname>-<random>`. */
  runtimeId?: string;
  log?: Log;
  webrtc?: WebRtcOptions;
  backoff?: BackoffOptions;
  /** Connect two local peers once before registering (default true): the first client connects faster. */
  warmUp?: boolean;
}

type AgentState = "idle" | "starting" | "running" | "stopping" | "stopped";
type AgentEvent = "start" | "registered" | "stop" | "stopped";

const AGENT_TRANSITIONS: Record<AgentState, Partial<Record<AgentEvent, AgentState>>> = {
  idle: { start: "starting", stop: "stopped" },
  starting: { registered: "running", stop: "stopping" },
  running: { registered: "running", stop: "stopping" },
  stopping: { stopped: "stopped" },
  stopped: {},
};

/** Control-socket closes that mean another process took over this runtime id: reconnecting would fight it. */
const REPLACED_CLOSE_CODE = 4000;

export class RuntimeAgent {
  readonly runtimeId: string;
  readonly #options: RuntimeAgentOptions;
  readonly #log: Log;
  readonly #control: ManagedSocket<PoolFrame, RuntimeControlFrame>;
  readonly #sessions = new Map<string, ServedSession>();
  readonly #closing = new Set<Promise<void>>();
  #state: AgentState = "idle";
  #heartbeat: NodeJS.Timeout | undefined;
  #registered: { resolve: () => void; reject: (error: Error) => void } | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: RuntimeAgentOptions) {
    if (!Number.isInteger(options.slots) || options.slots < 0 || options.slots > 1024)
      throw new RangeError("slots must be an integer from 0 to 1024");
    if (!/^https?:\/\//.test(options.gatewayUrl)) throw new TypeError(`gatewayUrl must be http(s)://…, got ${options.gatewayUrl}`);
    if (!options.token) throw new TypeError("a runtime token is required");
    this.runtimeId = options.runtimeId ?? defaultRuntimeId();
    const id = parse(RuntimeId, this.runtimeId);
    if (!id.ok) throw new TypeError(`runtimeId ${id.error.problem}`);
    this.#options = options;
    this.#log = options.log ?? consoleLog();
    this.#control = new ManagedSocket<PoolFrame, RuntimeControlFrame>({
      url: socketUrl(options.gatewayUrl, `/v1/runtime/connect?model=${encodeURIComponent(options.model.name)}`),
      token: options.token,
      schema: PoolFrame,
      log: (level, message) => this.#log(level, `control: ${message}`),
      backoff: options.backoff,
      rawFrames: [HEARTBEAT_RESPONSE],
      onOpen: () => this.#register(),
      onFrame: (frame) => this.#onControlFrame(frame),
      onLost: (failure) => this.#onControlLost(failure),
    });
  }

  get state(): AgentState {
    return this.#state;
  }

  /** The sessions being served, with what a test or an operator may want to know about each. */
  get sessions() {
    return [...this.#sessions.values()].map((session) => session.info);
  }

  /** Starts the model, warms up WebRTC, connects; resolves once the gateway has registered this runtime. */
  async start(): Promise<void> {
    if (!this.#move("start")) throw new Error(`cannot start a runtime agent that is ${this.#state}`);
    try {
      await this.#options.model.start?.({ log: this.#log });
      if (this.#options.warmUp ?? true) await warmUpWebRtc(this.#options.webrtc ?? {}, this.#log);
      if (this.#state !== "starting") throw new Error("stopped while starting");
      await new Promise<void>((resolve, reject) => {
        this.#registered = { resolve, reject };
        this.#control.start();
      });
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** Releases every session (the gateway ends them), stops their encoders, disconnects. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutDown();
    return this.#stopping;
  }

  async #shutDown(): Promise<void> {
    if (!this.#move("stop") || this.#state === "stopped") return; // never started: nothing to undo
    this.#registered?.reject(new Error("the runtime agent was stopped"));
    this.#registered = undefined;
    clearInterval(this.#heartbeat);
    this.#control.send({ type: "capacity", slots: 0 });
    const sessions = [...this.#sessions.values()];
    await Promise.all(sessions.map((session) => session.release("runtime_shutdown")));
    for (const session of sessions) session.disconnect();
    this.#control.stop();
    await Promise.all(this.#closing);
    try {
      await this.#options.model.stop?.();
    } finally {
      this.#move("stopped");
    }
  }

  /** Drops the control socket abruptly, as a network loss would (tests, demos). */
  dropControlSocket(): void {
    this.#control.drop();
  }

  /** Drops one session's socket abruptly (tests, demos). */
  dropSessionSocket(sessionId: string): void {
    const session = this.#sessions.get(sessionId);
    if (!session) throw new Error(`no session ${sessionId} here`);
    session.dropSocket();
  }

  #register(): void {
    this.#send({
      type: "register",
      runtime_id: this.runtimeId,
      model: { name: this.#options.model.name, ...(this.#options.model.version && { version: this.#options.model.version }) },
      capabilities: capabilitiesOf(this.#options.model),
      slots: this.#options.slots,
      sessions: [...this.#sessions.keys()],
    });
  }

  #onControlFrame(frame: PoolFrame): void {
    switch (frame.type) {
      case "registered":
        if (!this.#move("registered")) return;
        this.#log("info", `registered as ${frame.runtime_id} for model ${this.#options.model.name} (${this.#options.slots} slots)`);
        this.#startHeartbeat(frame.heartbeat_interval_ms);
        this.#registered?.resolve();
        this.#registered = undefined;
        return;
      case "assign":
        return this.#serve(frame.session_id);
      case "error":
        this.#log("warn", `control: gateway error ${frame.code}: ${frame.message}`);
        if (this.#state === "starting") this.#registered?.reject(new Error(`the gateway refused the registration: ${frame.code}: ${frame.message}`));
        return;
    }
  }

  #onControlLost(failure: SocketFailure): boolean {
    clearInterval(this.#heartbeat);
    if (this.#state === "starting" && failure.kind === "refused" && failure.status >= 400 && failure.status < 500) {
      this.#registered?.reject(new Error(`the gateway refused the control socket: ${describeFailure(failure)}`));
      return false;
    }
    if (failure.kind === "closed" && failure.code === REPLACED_CLOSE_CODE) {
      this.#log("error", `control: another process registered as ${this.runtimeId}; not reconnecting`);
      return false;
    }
    return this.#state === "starting" || this.#state === "running";
  }

  #serve(sessionId: string): void {
    if (this.#sessions.has(sessionId) || this.#state !== "running") return;
    this.#log("info", `serving session ${sessionId}`);
    const session = new ServedSession({
      sessionId,
      runtimeId: this.runtimeId,
      gatewayUrl: this.#options.gatewayUrl,
      token: this.#options.token,
      model: this.#options.model,
      webrtc: this.#options.webrtc ?? {},
      log: this.#log,
      backoff: this.#options.backoff,
      onClosed: (id, reason, done) => {
        this.#log("info", `session ${id} closed (${reason})`);
        this.#sessions.delete(id);
        this.#closing.add(done);
        void done.finally(() => this.#closing.delete(done));
      },
    });
    this.#sessions.set(sessionId, session);
    session.start();
  }

  #startHeartbeat(intervalMs: number): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = setInterval(() => this.#control.send(HEARTBEAT_REQUEST), Math.max(100, intervalMs));
    this.#heartbeat.unref();
  }

  #send(frame: RuntimeControlFrame): void {
    if (!this.#control.send(frame)) this.#log("debug", `control: ${frame.type} not sent (socket down)`);
  }

  #move(event: AgentEvent): boolean {
    const next = AGENT_TRANSITIONS[this.#state][event];
    if (next === undefined) return false;
    this.#state = next;
    return true;
  }
}

function defaultRuntimeId(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, "-")
      .slice(0, 64) || "runtime";
  return `${host}-${randomUUID().slice(0, 8)}`;
}
