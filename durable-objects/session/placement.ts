/**
 * Getting the session a GPU: its account's session slot (AccountLimits, taken at creation and at each restart),
 * then a place at the model's pool — `enqueue`, whose answer may carry a free slot at once, and later the pool's
 * calls: `assign` (a slot for a session that waited) and `queuePosition`.
 *
 * The pool tells a runtime of a slot it hands out before its answer to `enqueue` reaches this session, so that
 * runtime's session socket may arrive first: `answered()` is what its socket waits for. That promise is in memory on
 * purpose: it lives exactly as long as the call, and an object never hibernates with a call in flight.
 */
import type { SessionSettings } from "../../src/config.ts";
import { accountLimits, modelPool, type SlotRequest } from "../../src/objects.ts";
import type { Assignment } from "../pool/model-pool.ts";
import type { SessionHost } from "./host.ts";
import type { LifecycleEvent } from "./lifecycle.ts";
import { fail, ok, type Result, type SessionRecord } from "./record.ts";

/** What placement needs from its session object. */
export interface PlacementHost extends Pick<SessionHost, "env" | "record" | "now" | "events" | "save"> {
  readonly settings: SessionSettings;
  transition(event: LifecycleEvent, reason: string): boolean;
  sendStatus(): void;
  /** The client's ICE servers, now that a runtime (and its TURN subject) is known. */
  pushIceServers(): void;
}

export class Placement {
  readonly #host: PlacementHost;
  /** The pool's answer to this session's `enqueue`, applied, while it is awaited. */
  #answering: Promise<void> | undefined;

  constructor(host: PlacementHost) {
    this.#host = host;
  }

  /**
   * Takes the account's session slot for run `request.epoch` of this session (0: its creation, which also counts
   * toward the creation rates and the token's cap). Allowed, it gives the run's maximum length (ms): the account's,
   * or the creating token's if shorter.
   */
  async takeAccountSlot(request: SlotRequest, tokenMaxDurationMs: number | undefined): Promise<Result<number>> {
    const decision = await accountLimits(this.#host.env, request.accountId).acquire(request);
    if (!decision.ok) return fail(decision.error.code, decision.error.message, decision.error.retryAfter);
    return ok(Math.min(decision.value.maxSessionSeconds * 1000, tokenMaxDurationMs ?? Infinity));
  }

  /** Queues the session for a GPU, and applies the pool's answer (a slot free now, or a place in the queue). */
  async enqueue(): Promise<void> {
    const session = this.#host.record()!;
    session.deadlines.wait = this.#host.now() + this.#host.settings.queueWaitMs;
    this.#host.transition("queue", "queued");
    this.#host.save();
    const answering = this.#askPool(session);
    this.#answering = answering.catch(() => undefined);
    try {
      await answering;
    } finally {
      this.#answering = undefined;
    }
  }

  /** Settles once the pool's answer to a pending `enqueue` is applied (at once if none is pending). */
  answered(): Promise<void> | undefined {
    return this.#answering;
  }

  /** A slot free now comes in the pool's answer; later ones come by the pool calling `assign`. */
  async #askPool(session: SessionRecord): Promise<void> {
    const { position, runtimes, assignment } = await modelPool(this.#host.env, session.model).enqueue(session.id);
    if (assignment) this.assign(assignment);
    if (position !== null) {
      this.#host.events.record(this.#host.now(), "queued", { position, runtimes });
      this.queuePosition(position, runtimes);
    }
  }

  /** The pool gives this session a GPU. Returns false if the session no longer wants one (the pool frees it). */
  assign(assignment: Assignment): boolean {
    const session = this.#host.record();
    if (session?.state !== "WAITING" || session.runtime !== null) return false;
    session.runtime = assignment;
    session.queuePosition = null;
    session.deadlines.wait = this.#host.now() + this.#host.settings.connectMs;
    this.#host.transition("assign", "assigned");
    this.#host.events.record(this.#host.now(), "assigned", { runtime_id: assignment.runtimeId, model_version: assignment.modelVersion });
    this.#host.pushIceServers();
    this.#host.save();
    return true;
  }

  /**
   * The pool tells a waiting session its place, and how many runtimes are connected: with none, its reason says it
   * waits for a runtime (`no_runtime_connected`), not for a free slot (`queued`).
   */
  queuePosition(position: number, runtimes?: number): void {
    const session = this.#host.record();
    if (session?.state !== "WAITING" || session.runtime !== null) return;
    const reason = runtimes === undefined ? session.reason : runtimes === 0 ? "no_runtime_connected" : "queued";
    if (session.queuePosition === position && session.reason === reason) return;
    session.queuePosition = position;
    session.reason = reason;
    this.#host.save();
    this.#host.sendStatus();
  }
}
