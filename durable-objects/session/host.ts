/**
 * What a session object lends its collaborators (the socket links, the token, signaling, placement, settlement,
 * uploads, the alarm): its tables, opened here, and one host, built once in SessionRelay's constructor, of which
 * each collaborator names the part it uses.
 *
 * `env` is a getter on the host, read at each use and never copied: the fault tests swap a live instance's bindings.
 */
import type { CommandState } from "../../protocol/common.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import type { SessionSettings } from "../../src/config.ts";
import { CommandLog } from "./command-log.ts";
import { EventLog } from "./event-log.ts";
import type { LifecycleEvent } from "./lifecycle.ts";
import { MessageLog } from "./message-log.ts";
import { PendingSegments } from "./meter.ts";
import { Negotiation } from "./negotiation.ts";
import type { SessionRecord } from "./record.ts";
import type { SocketLinks } from "./socket-links.ts";
import { UploadLog } from "./upload-log.ts";

/** The session's tables: commands, model messages, events, billing segments not yet in the ledger, uploads, SDP/ICE. */
export interface SessionTables {
  readonly commands: CommandLog;
  readonly messages: MessageLog;
  readonly events: EventLog;
  readonly pendingSegments: PendingSegments;
  readonly uploads: UploadLog;
  readonly negotiation: Negotiation;
}

/**
 * Opens the tables, creating them in one statement batch (the object runs this each time it wakes). `safePoint`:
 * the stored record's `messageSeq`.
 */
export function openTables(storage: DurableObjectStorage, settings: SessionSettings, safePoint: number): SessionTables {
  const { sql } = storage;
  sql.exec([CommandLog.schema, MessageLog.schema, EventLog.schema, PendingSegments.schema, UploadLog.schema, Negotiation.schema].join("\n"));
  return {
    commands: new CommandLog(sql, { maxWaiting: settings.commandBufferCount, maxWaitingBytes: settings.commandBufferBytes }),
    messages: new MessageLog(sql, { maxStored: settings.messageBufferCount, maxStoredBytes: settings.messageBufferBytes }, safePoint),
    events: new EventLog(sql),
    pendingSegments: new PendingSegments(sql),
    uploads: new UploadLog(sql),
    negotiation: new Negotiation(storage),
  };
}

/** The session's tables, sockets and clock, and the relay policy every link drives. */
export interface SessionHost extends SessionTables {
  readonly env: Env;
  /** The session, if one lives here. */
  record(): SessionRecord | undefined;
  /** The object's clock (a test clock under TEST_CLOCK). */
  now(): number;
  readonly links: SocketLinks;
  /** Ends the session if `event` is allowed now (see SessionRelay). */
  end(event: LifecycleEvent, reason: string, at?: number): Promise<void>;
  /** A link changed: the lifecycle follows (ready, grace, resume). */
  reconcileLinks(): void;
  /** Tells the client a command's state. */
  commandStatus(seq: number, state: CommandState, error?: ErrorCode): void;
  /** The alarm follows the record's deadlines. */
  scheduleAlarm(): void;
  /** Writes the record if it changed (and acknowledges messages made safe by the write). */
  save(): void;
  /** No session lives here: keep no storage. */
  keepNothing(): void;
}
