/**
 * What a session owes others once it ends, or while it runs: its GPU slot back to the model's pool, its session
 * slot back to the account's limits, its closed billing segments to the D1 ledger, its uploaded files deleted from
 * R2. Each is a job that may fail (another object, D1 or R2 unreachable); one helper runs them all the same way:
 * done clears the job's deadline, a failure sets it RETRY_MS ahead, and the alarm runs the job again then.
 *
 * Hibernation-safe: a job's only state is its deadline in the session record, written with the attempt.
 */
import { writeSegments } from "../../src/metering/ledger.ts";
import { priceTable, usdPerSecond } from "../../src/metering/prices.ts";
import { accountLimits, modelPool } from "../../src/objects.ts";
import { deleteSessionUploads } from "../../src/uploads/store.ts";
import type { SessionHost } from "./host.ts";
import { RETRY_MS, type Deadlines } from "./record.ts";

/** What the jobs need from their session object (they run only while a session lives there). */
export type SettlementHost = Pick<SessionHost, "env" | "record" | "now" | "events" | "uploads" | "pendingSegments" | "scheduleAlarm" | "save">;

/** The deadlines that are retries of a job. */
type RetryDeadline = keyof Pick<Deadlines, "release" | "accountRelease" | "ledger" | "uploads">;

export class Settlement {
  readonly #host: SettlementHost;

  constructor(host: SettlementHost) {
    this.#host = host;
  }

  /**
   * The session has just ended (at `now`): everything it owes is due. The jobs' deadlines are written with the end
   * itself, so an eviction before they are confirmed cannot lose them; then every job runs (the alarm retries).
   */
  async settleEnd(now: number, purgeAt: number): Promise<void> {
    const session = this.#host.record()!;
    session.deadlines = {
      purge: purgeAt,
      release: now + RETRY_MS,
      accountRelease: now + RETRY_MS,
      ledger: session.deadlines.ledger,
      uploads: this.#host.uploads.count > 0 ? now + RETRY_MS : undefined,
    };
    session.releasePending = true;
    this.#host.save();
    await Promise.all([this.releasePoolSlot(), this.releaseAccountSlot(), this.flushLedger(), this.deleteUploads()]);
  }

  /** Frees the GPU slot or queue place at the pool. Returns how many runtimes are connected (for the end reason). */
  async releasePoolSlot(): Promise<number | undefined> {
    const session = this.#host.record()!;
    return this.#run("release", "pool release", async () => {
      const { runtimes } = await modelPool(this.#host.env, session.model).release(session.id);
      session.releasePending = false;
      return { done: true, value: runtimes };
    });
  }

  /** Frees the account's session slot (AccountLimits) held by run `epoch` of this session. */
  async releaseAccountSlot(epoch = this.#host.record()!.slotEpoch ?? 0): Promise<void> {
    const session = this.#host.record()!;
    await this.#run("accountRelease", "account slot release", async () => {
      await accountLimits(this.#host.env, session.accountId).release(session.id, epoch);
      return { done: true };
    });
  }

  /** Writes the closed segments to the D1 ledger; on failure they stay pending. */
  async flushLedger(): Promise<void> {
    const { env, pendingSegments } = this.#host;
    const session = this.#host.record()!;
    const pending = pendingSegments.list();
    await this.#run("ledger", "ledger write", async () => {
      if (pending.length > 0) {
        const price = usdPerSecond(priceTable(env), session.model);
        const { id: sessionId, accountId, apiKeyId, model } = session;
        await writeSegments(
          env.DB,
          pending.map((segment) => ({ ...segment, sessionId, accountId, apiKeyId, model, usdPerSecond: price })),
        );
        pendingSegments.written(pending.map((segment) => segment.segmentNo));
      }
      // Segments closed meanwhile keep the batch deadline they set.
      return { done: pendingSegments.count === 0 };
    });
  }

  /** Deletes the session's files from R2 (after its end). */
  async deleteUploads(): Promise<void> {
    const { env, uploads, events } = this.#host;
    const session = this.#host.record()!;
    await this.#run("uploads", "upload deletion", async () => {
      if (uploads.count > 0) {
        const deleted = await deleteSessionUploads(env.UPLOADS, session.id);
        uploads.clear();
        events.record(this.#host.now(), "uploads_deleted", { objects: deleted });
      }
      return { done: true };
    });
  }

  /**
   * The one retry shape: runs `job`; done clears `deadline`, a failure is logged and sets it RETRY_MS ahead (the
   * alarm tries again then). Either way the alarm follows the deadlines and the record is written.
   */
  async #run<T>(deadline: RetryDeadline, what: string, job: () => Promise<{ done: boolean; value?: T }>): Promise<T | undefined> {
    const session = this.#host.record()!;
    try {
      const { done, value } = await job();
      if (done) session.deadlines[deadline] = undefined;
      return value;
    } catch (error) {
      console.error(`${what} failed; retrying by alarm`, session.id, String(error));
      session.deadlines[deadline] = this.#host.now() + RETRY_MS;
      return undefined;
    } finally {
      this.#host.scheduleAlarm();
      this.#host.save();
    }
  }
}
