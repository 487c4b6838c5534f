/**
 * Offers, answers and candidates between the client and its runtime, for both of the client's transports: a new
 * peer connection generation started by an offer, the client's candidates relayed to the runtime (the native
 * socket's frames reach these through client-link.ts; the runtime's side is runtime-link.ts), and the official
 * client's REST transport — connections, offers, the answer long-poll, batches of candidates — whose RPC methods on
 * SessionRelay are these, once SessionRelay has checked the caller owns the session.
 *
 * Hibernation-safe: what is negotiated is stored (negotiation.ts) and the generation is in the record; only the
 * long-polls waiting for an answer are in memory (waiters.ts).
 */
import { LIMITS, type IceCandidate } from "../../protocol/common.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import type { SessionHost } from "./host.ts";
import { isEnded } from "./lifecycle.ts";
import type { Offer } from "./negotiation.ts";
import { fail, ok, type Result } from "./record.ts";
import type { Waiters } from "./waiters.ts";

/** What signaling needs from its session object. */
export interface SignalingHost extends Pick<SessionHost, "record" | "now" | "events" | "negotiation" | "links" | "save"> {
  /** Long-polling requests, woken when the session changes (an answer came). */
  readonly waiters: Waiters;
}

export class Signaling {
  readonly #host: SignalingHost;

  constructor(host: SignalingHost) {
    this.#host = host;
  }

  /** An offer starts generation `generation`: stored, and sent on to the runtime. */
  start(generation: number, sdp: string, trackMapping?: unknown, trickle = false): void {
    const isReconnect = this.#host.record()!.generation > 0;
    this.reset(generation, { sdp, trackMapping, ...(trickle && { trickle }) });
    this.#host.events.record(this.#host.now(), "offer", { generation, reconnect: isReconnect });
    this.#host.links.toRuntime({ type: "offer", generation, sdp, track_mapping: trackMapping, ...(trickle && { trickle: true }) });
  }

  /** Generation `generation` is the current one, negotiated from `offer` (none yet: a connection reserved first). */
  reset(generation: number, offer: Offer | null = null): void {
    this.#host.record()!.generation = generation;
    this.#host.negotiation.reset(offer);
  }

  /** A client candidate of the current generation, relayed to the runtime; refused past the per-generation limit. */
  relayClientCandidate(generation: number, candidate: IceCandidate | null): ErrorCode | undefined {
    const { negotiation, links } = this.#host;
    if (negotiation.clientCandidates.length >= LIMITS.candidatesPerGeneration) return "ICE_CANDIDATE_LIMIT";
    negotiation.addCandidate("client", candidate);
    links.toRuntime({ type: "ice", generation, candidate });
    return undefined;
  }

  /** REST: a new peer connection generation (its caller checked the account, and that the session lives). */
  submitOffer(offer: { sdp: string; trackMapping?: unknown; connectionId?: string }): Result<{ connection_id: string }> {
    const session = this.#host.record()!;
    let generation = session.generation + 1;
    if (offer.connectionId !== undefined) {
      // A connection created with POST connections reserves its generation; an offer on it negotiates that one.
      const current = this.#current(offer.connectionId);
      if (!current.ok) return current;
      generation = current.value;
    }
    session.clientKind ??= "rest";
    this.start(generation, offer.sdp, offer.trackMapping);
    this.#host.save();
    return ok({ connection_id: connectionId(generation) });
  }

  createConnection(): Result<{ connection_id: string; track_map: unknown[] }> {
    const session = this.#host.record()!;
    session.clientKind ??= "rest";
    const generation = session.generation + 1;
    this.reset(generation);
    this.#host.save();
    return ok({ connection_id: connectionId(generation), track_map: session.runtime?.capabilities.tracks ?? [] });
  }

  /** The runtime's answer for the current (or the named) connection; waits up to `waitMs` for it. */
  async answer(connection: string | undefined, waitMs: number): Promise<Result<{ sdp_answer: string; connection_id: string } | null>> {
    if (connection !== undefined) {
      const current = this.#current(connection);
      if (!current.ok) return current;
    }
    const { negotiation, waiters } = this.#host;
    const generation = this.#host.record()!.generation;
    const settled = () => {
      const session = this.#host.record()!;
      return negotiation.answer !== null || isEnded(session.state) || session.generation !== generation;
    };
    await waiters.until(settled, waitMs);
    const session = this.#host.record()!;
    if (isEnded(session.state)) return fail("SESSION_ENDED", `The session is ${session.state}: ${session.reason}.`);
    if (generation !== session.generation) return fail("CONNECTION_SUPERSEDED");
    const { answer } = negotiation;
    return ok(answer === null ? null : { sdp_answer: answer, connection_id: connectionId(generation) });
  }

  addClientCandidates(connection: string, candidates: IceCandidate[], final: boolean): Result<{ connection_id: string }> {
    const current = this.#current(connection);
    if (!current.ok) return current;
    const generation = current.value;
    const all: (IceCandidate | null)[] = final ? [...candidates, null] : candidates;
    // All of the request or none of it: a refused request must not have been half relayed.
    if (this.#host.negotiation.clientCandidates.length + all.length > LIMITS.candidatesPerGeneration) return fail("ICE_CANDIDATE_LIMIT");
    for (const candidate of all) this.relayClientCandidate(generation, candidate);
    this.#host.save();
    return ok({ connection_id: connection });
  }

  /** The generation of connection id `id` if it is the current one: older ids are superseded, others unknown. */
  #current(id: string): Result<number> {
    const generation = parseConnectionId(id);
    const current = this.#host.record()!.generation;
    if (generation === undefined || generation > current) return fail("CONNECTION_NOT_FOUND", `No connection ${id} on this session.`);
    if (generation < current) return fail("CONNECTION_SUPERSEDED");
    return ok(generation);
  }
}

const connectionId = (generation: number) => `conn_${generation}`;

function parseConnectionId(id: string): number | undefined {
  const match = /^conn_(\d{1,7})$/.exec(id);
  return match ? Number(match[1]) : undefined;
}
