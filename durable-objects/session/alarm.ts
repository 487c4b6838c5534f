/**
 * The session's one alarm. Every deadline is a stored time in the record (record.ts's `Deadlines`); the alarm is set
 * to the earliest one, and when it fires each deadline that is due runs its handler from one table (deadline kind →
 * handler), in the table's order:
 *
 * - the settlement jobs that must finish before the storage may go (billing segments to the ledger, files deleted),
 *   which a due purge runs too, then the purge itself, which ends the dispatch;
 * - the endings (maximum length, grace, queue or connect wait): the first due one ends the session, the others
 *   are then moot;
 * - the socket deadlines (token expiry, runtime hello), the retried releases, the ICE server refresh.
 *
 * Handlers see the deadlines as they were when the alarm fired (an ending replaces the record's). Hibernation-safe:
 * what is due is read from the record each time; the alarm last set is remembered only to skip setting it again.
 */
import type { ClientLink } from "./client-link.ts";
import type { ClientToken } from "./client-token.ts";
import type { SessionHost } from "./host.ts";
import { isEnded } from "./lifecycle.ts";
import type { Deadlines, SocketAttachment } from "./record.ts";
import type { RuntimeLink } from "./runtime-link.ts";
import type { Settlement } from "./settlement.ts";

/** What the alarm needs from its session object. */
export interface AlarmHost extends Pick<SessionHost, "record" | "now" | "links" | "pendingSegments" | "end"> {
  readonly storage: DurableObjectStorage;
  readonly settlement: Settlement;
  readonly token: ClientToken;
  readonly runtime: RuntimeLink;
  readonly client: ClientLink;
  /** Deletes all the session's storage and forgets the session. */
  purge(): Promise<void>;
}

type Kind = keyof Deadlines;

/** A due deadline's handler; `deadlines` as they were when the alarm fired. Resolves to "purged" if nothing is left. */
type OnDeadline = (deadlines: Deadlines) => Promise<unknown>;

/** Deadlines that a due purge runs as well: the storage must owe nothing before it goes. */
const BEFORE_PURGE: readonly Kind[] = ["ledger", "uploads"];
/** Deadlines that end the session: one runs only if no ending before it in the table did. */
const ENDINGS: readonly Kind[] = ["maxDuration", "grace", "wait"];

export class Alarm {
  readonly #host: AlarmHost;
  /** The dispatch table; its key order is the order handlers run in. */
  readonly #table: Record<Kind, OnDeadline>;
  /** The alarm this instance last set (earliest deadline @ test-clock offset); undefined once it has fired. */
  #set: string | undefined;

  constructor(host: AlarmHost) {
    this.#host = host;
    const { settlement, links } = host;
    const session = () => host.record()!;
    this.#table = {
      ledger: () => settlement.flushLedger(),
      uploads: () => settlement.deleteUploads(),
      purge: async (deadlines) => {
        if (host.pendingSegments.count > 0 || deadlines.uploads !== undefined) return; // again once they are settled
        await host.storage.deleteAlarm();
        this.#set = undefined;
        await host.purge();
        return "purged";
      },
      // Ended at the deadline, not when the alarm ran: a late alarm bills nothing extra (grace bills exactly 30 s).
      maxDuration: (deadlines) => host.end("max_duration", "max_duration", deadlines.maxDuration),
      // Whoever is still away decides the ending; a reconnect that beat this alarm has already cleared the deadline.
      grace: (deadlines) =>
        links.runtimeUp()
          ? host.end("grace_expired", "client_reconnect_timeout", deadlines.grace)
          : host.end("runtime_lost", "runtime_lost", deadlines.grace),
      wait: async () => {
        if (session().runtime) return host.end("wait_expired", "client_never_connected");
        await host.end("wait_expired", (await settlement.releasePoolSlot()) === 0 ? "no_runtime" : "no_capacity");
      },
      tokenExpiry: async (deadlines) => {
        deadlines.tokenExpiry = undefined; // set again below if the socket's token was renewed meanwhile
        const client = links.socket("client");
        if (client && !(await host.token.closeIfExpired(client))) {
          deadlines.tokenExpiry = (client.deserializeAttachment() as SocketAttachment).tokenDeadline;
        }
      },
      hello: async (deadlines) => {
        deadlines.hello = undefined;
        if (!isEnded(session().state)) host.runtime.closeSilent();
      },
      release: async () => void (await settlement.releasePoolSlot()),
      accountRelease: () => settlement.releaseAccountSlot(),
      iceRefresh: async (deadlines) => {
        deadlines.iceRefresh = undefined; // set again by the push, if a client is there to get one
        if (!isEnded(session().state)) await host.client.pushIceServers();
      },
    };
  }

  /** The alarm fired: runs the handler of every due deadline. Returns false if no session is left here. */
  async run(): Promise<boolean> {
    this.#set = undefined; // the alarm that fired is gone
    const session = this.#host.record();
    if (!session) return false;
    const now = this.#host.now();
    const { deadlines } = session;
    const due = (kind: Kind) => deadlines[kind] !== undefined && deadlines[kind] <= now;
    let ended = false;
    for (const [kind, onDeadline] of Object.entries(this.#table) as [Kind, OnDeadline][]) {
      if (!due(kind) && !(BEFORE_PURGE.includes(kind) && due("purge"))) continue;
      const ending = ENDINGS.includes(kind);
      if (ending && ended) continue;
      ended ||= ending;
      if ((await onDeadline(deadlines)) === "purged") return false;
    }
    return true;
  }

  /** Sets the alarm to the earliest deadline of the record (none: no alarm). */
  schedule(): void {
    const { now, storage } = this.#host;
    const deadlines = Object.values(this.#host.record()!.deadlines).filter((value): value is number => value !== undefined);
    const earliest = deadlines.length === 0 ? null : Math.min(...deadlines);
    // Most changes leave the earliest deadline where it was: setting the same alarm again is a storage write.
    const alarm = `${earliest}@${now() - Date.now()}`;
    if (alarm === this.#set) return;
    this.#set = alarm;
    if (earliest === null) {
      void storage.deleteAlarm();
      return;
    }
    // The alarm runs on real time; the test clock only decides which deadlines have passed when it fires.
    void storage.setAlarm(Date.now() + Math.max(0, earliest - now()));
  }
}
