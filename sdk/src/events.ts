/** What a Client tells its listeners. */
import type { SessionState } from "../../protocol/common.ts";
import type { CommandPolicy } from "./command-queue.ts";
import type { ClientStatus } from "./connection-state.ts";
import type { ReactorError } from "./errors.ts";
import type { ClientStats } from "./stats-sampler.ts";

export interface SessionInfo {
  state: SessionState;
  reason?: string;
  /** 1-based place in the GPU queue while waiting. */
  queuePosition?: number;
  /** Unix ms at which a reconnecting session ends unless both sides are back. */
  graceDeadline?: number;
}

export interface SendCommandOptions {
  /** What happens while the session is not ready: keep it (`buffer`), keep only the newest of its type (`replace`), or `drop` it. */
  whileWaiting?: CommandPolicy;
}

export interface ClientEvents {
  statusChanged: (status: ClientStatus) => void;
  sessionIdChanged: (sessionId: string | undefined) => void;
  /** An application-scope message from the model. */
  message: (data: unknown, meta: { seq: number }) => void;
  runtimeMessage: (data: unknown, meta: { seq: number }) => void;
  trackReceived: (name: string, track: MediaStreamTrack, stream: MediaStream) => void;
  error: (error: ReactorError) => void;
  statsUpdate: (stats: ClientStats) => void;
  /** Every status the gateway sends: state, reason, queue position, grace deadline. */
  sessionInfo: (info: SessionInfo) => void;
}
