/**
 * The current peer connection's SDP and ICE candidates, kept so a client or runtime that reconnects (or an object
 * that wakes) can be given them again. Stored apart from the session's record, each piece written once: the offer
 * and the answer (up to 64 KiB each) under one key when they arrive; candidates as rows, written in batches.
 *
 * Why batches: a storage write costs far more than relaying a frame here (a relay of offer, answer and 8 candidates
 * runs ~2× faster without the per-candidate writes), and candidates come in bursts of 5–20 within a few hundred
 * milliseconds. They are relayed at once and written together CANDIDATE_BATCH_MS later (the pending timer keeps the
 * object in memory until then), or sooner with any other write of the session. What a crash in that window can lose
 * is the replay of those candidates to a side that reconnects; clients recover from that with an ICE restart.
 */
import type { IceCandidate } from "../../protocol/common.ts";

export interface Offer {
  sdp: string;
  trackMapping?: unknown;
  /** Offered on the native socket, whose client takes the runtime's candidates trickled after the answer. */
  trickle?: boolean;
}

type Side = "client" | "runtime";

const CANDIDATE_BATCH_MS = 250;

const SDP_KEY = "negotiation";

interface StoredSdp {
  offer: Offer | null;
  answer: string | null;
  /** Records written before candidates had their own table carried them here. */
  clientCandidates?: (IceCandidate | null)[];
  runtimeCandidates?: (IceCandidate | null)[];
}

export class Negotiation {
  readonly #storage: DurableObjectStorage;
  #offer: Offer | null = null;
  #answer: string | null = null;
  readonly #candidates: Record<Side, (IceCandidate | null)[]> = { client: [], runtime: [] };
  /** Candidates relayed but not yet written, with their row numbers. */
  #unwritten: { side: Side; seq: number; candidate: IceCandidate | null }[] = [];
  #batchTimer: ReturnType<typeof setTimeout> | undefined;

  static readonly schema = `CREATE TABLE IF NOT EXISTS candidates (
      side TEXT NOT NULL CHECK (side IN ('client', 'runtime')),
      seq INTEGER NOT NULL,
      candidate TEXT NOT NULL,
      PRIMARY KEY (side, seq)
    );`;

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
    const stored = storage.kv.get<StoredSdp>(SDP_KEY);
    if (!stored) return;
    this.#offer = stored.offer;
    this.#answer = stored.answer;
    this.#candidates.client = stored.clientCandidates ?? [];
    this.#candidates.runtime = stored.runtimeCandidates ?? [];
    const rows = storage.sql.exec<{ side: Side; candidate: string }>("SELECT side, candidate FROM candidates ORDER BY side, seq");
    for (const { side, candidate } of rows) this.#candidates[side].push(JSON.parse(candidate) as IceCandidate | null);
  }

  get offer(): Offer | null {
    return this.#offer;
  }

  get answer(): string | null {
    return this.#answer;
  }

  get clientCandidates(): readonly (IceCandidate | null)[] {
    return this.#candidates.client;
  }

  get runtimeCandidates(): readonly (IceCandidate | null)[] {
    return this.#candidates.runtime;
  }

  /** A new generation: everything of the previous one is dropped, and `offer` (if any) starts it. */
  reset(offer: Offer | null = null): void {
    this.#offer = offer;
    this.#answer = null;
    this.#candidates.client = [];
    this.#candidates.runtime = [];
    this.#dropUnwritten();
    this.#storage.sql.exec("DELETE FROM candidates");
    this.#writeSdp();
  }

  setAnswer(sdp: string): void {
    this.#answer = sdp;
    this.#writeSdp();
  }

  addCandidate(side: Side, candidate: IceCandidate | null): void {
    const list = this.#candidates[side];
    list.push(candidate);
    this.#unwritten.push({ side, seq: list.length, candidate });
    this.#batchTimer ??= setTimeout(() => this.writeCandidates(), CANDIDATE_BATCH_MS);
  }

  /** Writes the candidates not written yet (at the end of their batch, or along with another write). */
  writeCandidates(): void {
    if (this.#batchTimer !== undefined) clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    for (const { side, seq, candidate } of this.#unwritten.splice(0)) {
      this.#storage.sql.exec("INSERT INTO candidates (side, seq, candidate) VALUES (?, ?, ?)", side, seq, JSON.stringify(candidate));
    }
  }

  /** Forgets it in memory (the session's storage was deleted). */
  forget(): void {
    this.#offer = null;
    this.#answer = null;
    this.#candidates.client = [];
    this.#candidates.runtime = [];
    this.#dropUnwritten();
  }

  #dropUnwritten(): void {
    if (this.#batchTimer !== undefined) clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    this.#unwritten = [];
  }

  #writeSdp(): void {
    this.#storage.kv.put(SDP_KEY, { offer: this.#offer, answer: this.#answer } satisfies StoredSdp);
  }
}
