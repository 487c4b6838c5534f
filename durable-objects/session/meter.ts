/**
 * Metering of one session. Billed time is time holding a GPU: the session's spans in ACTIVE and RECONNECTING,
 * each one a ledger *segment*. A segment opens when the session enters a billed state and closes when it leaves
 * it; a closed segment is kept in this object's storage (`pending_segments`) in the same write as the transition,
 * until the ledger in D1 has it. The open segment lives in the session record (`MeterState`), so an eviction loses
 * nothing: the record and the pending rows are all there is, and writing a segment to D1 twice is harmless (its
 * key is the session id and segment number).
 *
 * Idle time (reported, still billed): ACTIVE time when the client has sent no command for the idle span, counted
 * from its last command or from when the session became ready (or resumed), whichever is later. Only the commands
 * this gateway relays are seen: the native SDK's. The official client sends its commands peer to peer, so its
 * sessions are never counted idle.
 */
import type { SessionState } from "../../protocol/common.ts";
import { holdsGpu } from "./lifecycle.ts";

import type { BilledState, Segment } from "../../src/objects.ts";

export type { BilledState, Segment } from "../../src/objects.ts";

interface OpenSegment {
  segmentNo: number;
  state: BilledState;
  startedAt: number;
  idleMs: number;
  /** Idle time is counted up to here. */
  countedTo: number;
}

/** Stored in the session record. */
export interface MeterState {
  nextSegment: number;
  open: OpenSegment | null;
  /** From when the session counts as idle unless a command comes; null when idle time is not measured. */
  idleFrom: number | null;
}

export const newMeter = (): MeterState => ({ nextSegment: 1, open: null, idleFrom: null });

function countIdle(open: OpenSegment, idleFrom: number | null, until: number): void {
  if (open.state === "ACTIVE" && idleFrom !== null) open.idleMs += Math.max(0, until - Math.max(idleFrom, open.countedTo));
  open.countedTo = Math.max(open.countedTo, until);
}

function close(open: OpenSegment, idleFrom: number | null, at: number): Segment {
  const endedAt = Math.max(open.startedAt, at);
  countIdle(open, idleFrom, endedAt);
  return {
    segmentNo: open.segmentNo,
    state: open.state,
    startedAt: open.startedAt,
    endedAt,
    idleMs: Math.min(open.idleMs, endedAt - open.startedAt),
  };
}

export interface MeterOptions {
  idleSpanMs: number;
  /** Whether this session's commands pass through the gateway (native client), so idle time can be told. */
  seesCommands: boolean;
}

/**
 * The session went from `from` to `to` at `at`: closes the open segment (returned, to be written) and opens the
 * next one if `to` is billed.
 */
export function meterTransition(meter: MeterState, from: SessionState, to: SessionState, at: number, options: MeterOptions): Segment | null {
  if (from === to) return null;
  const closed = meter.open ? close(meter.open, meter.idleFrom, at) : null;
  meter.open = null;
  if (holdsGpu(to)) {
    meter.open = { segmentNo: meter.nextSegment++, state: to as BilledState, startedAt: at, idleMs: 0, countedTo: at };
    if (to === "ACTIVE" && options.seesCommands) meter.idleFrom = Math.max(meter.idleFrom ?? at, at + options.idleSpanMs);
  }
  return closed;
}

/** A command from the client at `at`: idle time so far is counted, and the idle span starts again. */
export function meterCommand(meter: MeterState, at: number, idleSpanMs: number): void {
  if (meter.open) countIdle(meter.open, meter.idleFrom, at);
  meter.idleFrom = at + idleSpanMs;
}

/** The open segment as if it closed at `now` (for a live usage view); the meter is not changed. */
export function openSegmentAt(meter: MeterState, now: number): Segment | null {
  return meter.open ? close({ ...meter.open }, meter.idleFrom, now) : null;
}

type SegmentRow = { segment_no: number; state: BilledState; started_at: number; ended_at: number; idle_ms: number };

/** Closed segments not yet confirmed written to the D1 ledger, in this object's storage. */
export class PendingSegments {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  static readonly schema = `CREATE TABLE IF NOT EXISTS pending_segments (
      segment_no INTEGER PRIMARY KEY,
      state TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      ended_at INTEGER NOT NULL,
      idle_ms INTEGER NOT NULL
    );`;

  add(segment: Segment): void {
    this.#sql.exec(
      "INSERT OR REPLACE INTO pending_segments (segment_no, state, started_at, ended_at, idle_ms) VALUES (?, ?, ?, ?, ?)",
      segment.segmentNo,
      segment.state,
      segment.startedAt,
      segment.endedAt,
      segment.idleMs,
    );
  }

  list(): Segment[] {
    return this.#sql
      .exec<SegmentRow>("SELECT * FROM pending_segments ORDER BY segment_no")
      .toArray()
      .map((row) => ({ segmentNo: row.segment_no, state: row.state, startedAt: row.started_at, endedAt: row.ended_at, idleMs: row.idle_ms }));
  }

  /** The D1 ledger has these. */
  written(segmentNos: number[]): void {
    for (const segmentNo of segmentNos) this.#sql.exec("DELETE FROM pending_segments WHERE segment_no = ?", segmentNo);
  }

  get count(): number {
    return this.#sql.exec<{ n: number }>("SELECT count(*) AS n FROM pending_segments").one().n;
  }
}
