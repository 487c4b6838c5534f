/**
 * Commands through live sessions, checked at the runtime: each session's client sends numbered commands with a
 * bounded window (at most `window` not yet confirmed stored by the gateway), its runtime processes them in order and
 * acknowledges them in batches, and both sides can be cut off on purpose (forced disconnects, no close handshake)
 * and come back inside the grace window the way the protocol says: the client resends from the welcome's
 * `next_command_seq`, the runtime says hello with the highest command it processed. The runtime counts what arrived
 * twice, out of order, or altered; what the gateway confirmed storing but never delivered is lost; a session the
 * gateway ends (its grace window ran out, say) is counted apart, with the commands it dropped. No media.
 */
import { KEEPALIVE_PING } from "../../protocol/signaling.ts";
import { sleep, type LiveSession } from "./fleet.ts";
import { attach, openSignal, type Frame, type NodePeer } from "../../tools/peers.ts";

export interface CommandTally {
  sessions: number;
  commands: number;
  /** Sessions whose last command was processed and acknowledged before the deadline. */
  completed: number;
  /**
   * Commands the gateway had confirmed storing (a `command_status`, or the welcome's `next_command_seq`) that the
   * runtime never processed, in sessions that neither finished nor ended: silently lost (or stuck at the deadline).
   */
  lost: number;
  /** Commands that reached the runtime again after it had processed them. */
  duplicated: number;
  /** Commands that reached the runtime before one with a lower seq (a gap). */
  outOfOrder: number;
  /** Commands whose payload did not match their seq and session. */
  altered: number;
  /** `command_status` dropped/replaced while the session was live (not because it ended), and COMMAND_SEQ_GAP errors. */
  refused: number;
  /** Sessions the gateway ended during the run, by reason (e.g. a grace window that ran out). */
  ended: Record<string, number>;
  /** Commands not run because their session ended (the protocol drops them and says so). */
  droppedWithEnd: number;
  /** COMMAND_REPLAYED: a command resent after a reconnect that the gateway already had (harmless, expected). */
  replayed: number;
  /** Other error frames, first few kept. */
  errors: string[];
  /** Sockets the gateway closed on its own (not one of the forced disconnects), by side, code and reason. */
  unexpectedCloses: Record<string, number>;
  clientDrops: number;
  runtimeDrops: number;
  /** ms from a forced disconnect to the first frame of the new socket (welcome / session). */
  reconnectMs: number[];
  /** Client reconnects: from the connect to the upgrade's answer (101), and to the welcome frame. */
  clientUpgradeMs: number[];
  clientReconnectMs: number[];
  /** Runtime reconnects: from the forced disconnect to the `session` frame answering its hello. */
  runtimeReconnectMs: number[];
  /** Commands the gateway re-sent to a reconnected runtime (it had stored them until acknowledged). */
  resentAfterRuntimeDrop: number;
  seconds: number;
  /** First command sent → last acknowledgement seen by the client, all sessions. */
  perSecond: number;
  /** Gateway CPU (all its workerd processes) per command, when the caller measured it. */
  serverCpuUsPerCommand?: number;
  /** The share of it spent in wrangler's local proxy, when the caller measured it. */
  proxyCpuUsPerCommand?: number;
  /** Sessions that had not finished at the deadline, and the commands they had not had processed. */
  unfinished: { sessions: number; commands: number };
}

/** A live session with the command state that carries over from one run to the next. */
export interface CommandSession {
  index: number;
  live: LiveSession;
  gatewayUrl: string;
  jwt: string;
  /** The client's next command seq (the gateway expects commands 1, 2, 3… without gaps). */
  nextSeq: number;
  /** The highest seq the runtime processed, in order. */
  processed: number;
}

export interface CommandPlan {
  perSession: number;
  /** At most this many commands sent and not yet confirmed stored by the gateway (`command_status`). */
  window: number;
  /** Forced client disconnects per session, at random points of the run. */
  clientDrops: number;
  /** Forced runtime disconnects per session. */
  runtimeDrops: number;
  /** Reconnect after a random pause of up to this long (the grace window is 30 s). */
  maxReconnectDelayMs: number;
  deadline: number;
}

export function newTally(): CommandTally {
  return {
    sessions: 0,
    commands: 0,
    completed: 0,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    altered: 0,
    refused: 0,
    ended: {},
    droppedWithEnd: 0,
    replayed: 0,
    errors: [],
    unexpectedCloses: {},
    clientDrops: 0,
    runtimeDrops: 0,
    reconnectMs: [],
    clientUpgradeMs: [],
    clientReconnectMs: [],
    runtimeReconnectMs: [],
    resentAfterRuntimeDrop: 0,
    seconds: 0,
    perSecond: 0,
    unfinished: { sessions: 0, commands: 0 },
  };
}

/** `count` distinct random points in [low, high], ascending. */
function points(count: number, low: number, high: number): number[] {
  const chosen = new Set<number>();
  const span = Math.max(1, high - low + 1);
  while (chosen.size < Math.min(count, span)) chosen.add(low + Math.floor(Math.random() * span));
  return [...chosen].sort((a, b) => a - b);
}

const ACK_EVERY = 8;
const ACK_DELAY_MS = 10;

/** Runs `plan` on one session; resolves when its last command is acknowledged, or at the deadline. */
export function driveSession(session: CommandSession, plan: CommandPlan, tally: CommandTally, onProgress: () => void): Promise<void> {
  const first = session.nextSeq;
  const last = first + plan.perSession - 1;
  // Drops happen while the session is busy: after the gateway has stored this many of the run's commands…
  const clientDropsAt = points(plan.clientDrops, first + 2, Math.max(first + 2, last - plan.window - 2));
  // …and when the runtime has processed this many.
  const runtimeDropsAt = points(plan.runtimeDrops, first + 2, Math.max(first + 2, last - 2));
  let persisted = first - 1;
  let acknowledged = first - 1;
  let clientAway = false;
  let runtimeAway = false;
  let resendWatch = 0; // after a runtime reconnect: seqs up to here were already delivered once (stored, resent)
  let ackTimer: NodeJS.Timeout | undefined;
  let finished = false;
  let resolveDone: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));

  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(ackTimer);
    clearTimeout(deadlineTimer);
    resolveDone();
  };
  const check = () => {
    if (!finished && acknowledged >= last && session.processed >= last) {
      tally.completed++;
      finish();
    }
  };
  const deadlineTimer = setTimeout(
    () => {
      if (finished) return;
      tally.unfinished.sessions++;
      tally.unfinished.commands += last - Math.min(last, session.processed);
      tally.lost += Math.max(0, persisted - session.processed);
      finish();
    },
    Math.max(0, plan.deadline - Date.now()),
  );
  /** The gateway ended the session: what the runtime had not run is dropped with it (and reported so). */
  const ended = (reason: string) => {
    if (finished) return;
    tally.ended[reason] = (tally.ended[reason] ?? 0) + 1;
    tally.droppedWithEnd += last - Math.min(last, session.processed);
    finish();
  };

  /** Counts a close we did not cause (a forced disconnect replaces the socket before terminating it). */
  const watchCloses = (peer: NodePeer, side: "client" | "runtime") => {
    peer.ws.once("close", (code, reason) => {
      if (finished) return;
      const current = side === "client" ? session.live.client : session.live.runtimePeer;
      if (current !== peer || (side === "client" ? clientAway : runtimeAway)) return;
      const key = `${side} ${code}${reason.length > 0 ? ` ${reason.toString()}` : ""}`;
      tally.unexpectedCloses[key] = (tally.unexpectedCloses[key] ?? 0) + 1;
    });
  };

  // ── Client ──
  const send = () => {
    while (!clientAway && !finished && session.nextSeq <= last && session.nextSeq - persisted <= plan.window) {
      const seq = session.nextSeq++;
      session.live.client.send({ type: "command", seq, command: { type: "echo", data: { seq, session: session.index } } });
    }
  };
  const onClientFrame = (frame: Frame): boolean => {
    switch (frame.type) {
      case "status":
        if (frame.state === "CLOSED" || frame.state === "INACTIVE") ended(`${String(frame.state)} ${String(frame.reason ?? "")}`.trim());
        break;
      case "command_status": {
        const seq = frame.seq as number;
        if (frame.state === "dropped" || frame.state === "replaced") {
          if (frame.error !== "SESSION_ENDED") tally.refused++;
        } else persisted = Math.max(persisted, seq);
        if (frame.state === "acknowledged") acknowledged = Math.max(acknowledged, seq);
        onProgress();
        // Only while there is still something to send: statuses for the last commands must reach the final socket.
        if (clientDropsAt.length > 0 && persisted >= clientDropsAt[0]! && !clientAway && session.nextSeq <= last) {
          clientDropsAt.shift();
          void dropClient();
          return true;
        }
        send();
        check();
        break;
      }
      case "error":
        if (frame.code === "COMMAND_REPLAYED") tally.replayed++;
        else if (frame.code === "COMMAND_SEQ_GAP") tally.refused++;
        else if (tally.errors.length < 5) tally.errors.push(`client: ${String(frame.code)} ${String(frame.message)}`);
        break;
    }
    return true;
  };
  const dropClient = async () => {
    clientAway = true;
    tally.clientDrops++;
    const old = session.live.client;
    old.onFrame = () => true;
    old.ws.terminate(); // no close handshake: the connection just goes
    const droppedAt = performance.now();
    await sleep(Math.random() * plan.maxReconnectDelayMs);
    for (let attempt = 1; !finished; attempt++) {
      try {
        const connecting = performance.now();
        const client = await openSignal(session.gatewayUrl, session.jwt, session.live.id);
        tally.clientUpgradeMs.push(performance.now() - connecting);
        session.live.client = client;
        watchCloses(client, "client");
        await new Promise<void>((resolve) => {
          attach(client, (frame) => {
            if (frame.type !== "welcome") return onClientFrame(frame);
            tally.reconnectMs.push(performance.now() - droppedAt);
            tally.clientReconnectMs.push(performance.now() - droppedAt);
            // The gateway has every command below next_command_seq; the rest is sent (again) from there.
            const next = frame.next_command_seq as number;
            persisted = Math.max(persisted, next - 1);
            session.nextSeq = next;
            clientAway = false;
            resolve();
            return true;
          });
        });
        send();
        check();
        return;
      } catch (error) {
        // 409: the session has ended (a reconnect that came after its grace window, say).
        if (/HTTP 409/.test((error as Error).message)) return ended("409 on client reconnect");
        if (attempt >= 5) {
          if (tally.errors.length < 5) tally.errors.push(`client reconnect: ${(error as Error).message}`);
          return;
        }
        await sleep(100 * attempt);
      }
    }
  };

  // ── Runtime ──
  const acknowledge = () => {
    clearTimeout(ackTimer);
    ackTimer = undefined;
    if (!runtimeAway) session.live.runtimePeer.send({ type: "command_ack", seq: session.processed });
  };
  const onRuntimeFrame = (frame: Frame): boolean => {
    if (frame.type === "end") ended(`end ${String(frame.reason ?? "")}`.trim());
    if (frame.type !== "command") return frame.type !== "session"; // `session`: for openSession
    const seq = frame.seq as number;
    const data = (frame.command as { data?: { seq?: number; session?: number } }).data;
    if (seq <= session.processed) {
      tally.duplicated++;
      return true;
    }
    if (seq > session.processed + 1) {
      tally.outOfOrder++;
      return true;
    }
    if (data?.seq !== seq || data.session !== session.index) tally.altered++;
    if (seq <= resendWatch) tally.resentAfterRuntimeDrop++;
    session.processed = seq;
    if (runtimeDropsAt.length > 0 && seq >= runtimeDropsAt[0]! && !runtimeAway) {
      runtimeDropsAt.shift();
      void dropRuntime();
      return true;
    }
    if (seq % ACK_EVERY === 0 || seq === last) acknowledge();
    else ackTimer ??= setTimeout(acknowledge, ACK_DELAY_MS);
    check();
    return true;
  };
  const dropRuntime = async () => {
    runtimeAway = true;
    tally.runtimeDrops++;
    clearTimeout(ackTimer);
    ackTimer = undefined;
    const old = session.live.runtimePeer;
    old.onFrame = () => true;
    old.ws.terminate();
    const droppedAt = performance.now();
    resendWatch = session.nextSeq; // anything up to what the client has sent may come again, from storage
    await sleep(Math.random() * plan.maxReconnectDelayMs);
    for (let attempt = 1; !finished; attempt++) {
      try {
        // hello { command_seq }: the gateway forgets what was processed and resends the rest, in order.
        session.live.runtimePeer = await session.live.runtime.openSession(session.live.id, session.processed, onRuntimeFrame);
        watchCloses(session.live.runtimePeer, "runtime");
        tally.reconnectMs.push(performance.now() - droppedAt);
        tally.runtimeReconnectMs.push(performance.now() - droppedAt);
        runtimeAway = false;
        acknowledge();
        check();
        return;
      } catch (error) {
        if (/HTTP 409/.test((error as Error).message)) return ended("409 on runtime reconnect");
        if (attempt >= 5) {
          if (tally.errors.length < 5) tally.errors.push(`runtime reconnect: ${(error as Error).message}`);
          return;
        }
        await sleep(100 * attempt);
      }
    }
  };

  session.live.client.onFrame = onClientFrame;
  session.live.runtimePeer.onFrame = onRuntimeFrame;
  watchCloses(session.live.client, "client");
  watchCloses(session.live.runtimePeer, "runtime");
  tally.sessions++;
  tally.commands += plan.perSession;
  send();
  return done;
}

/** Runs `plan` on every session at once; fills in the time, the rate and (given `serverCpuMs`) the server's CPU. */
export async function driveAll(
  sessions: CommandSession[],
  plan: CommandPlan,
  onProgress: () => void = () => {},
  serverCpuMs?: () => number,
): Promise<CommandTally> {
  const tally = newTally();
  const cpuBefore = serverCpuMs?.();
  const started = performance.now();
  await Promise.all(sessions.map((session) => driveSession(session, plan, tally, onProgress)));
  tally.seconds = (performance.now() - started) / 1000;
  if (serverCpuMs && cpuBefore !== undefined) tally.serverCpuUsPerCommand = ((serverCpuMs() - cpuBefore) * 1000) / Math.max(1, tally.commands);
  // Commands acknowledged in sessions that finished; a command the gateway lost stalls its session (the runtime
  // runs them in order), so it shows up under `lost` and `unfinished`.
  tally.perSecond = (tally.completed * plan.perSession) / tally.seconds;
  return tally;
}

/**
 * Ends sessions the way a client does (`close`), and waits (bounded) for the gateway to close their sockets: nothing
 * of theirs (grace alarms) is left to wake up later.
 */
export async function endSessions(sessions: LiveSession[], timeoutMs: number): Promise<void> {
  await Promise.all(
    sessions.map(
      (session) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          session.client.ws.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
          session.client.onFrame = () => true;
          session.runtimePeer.onFrame = () => true;
          session.client.send({ type: "close", reason: "bench done" });
        }),
    ),
  );
  for (const session of sessions) {
    session.client.ws.terminate();
    session.runtimePeer.ws.terminate();
  }
}

/** A keep-alive ping on every client socket (answered at the edge without waking the session); counts the pongs. */
export async function keepAlive(sessions: LiveSession[], timeoutMs: number): Promise<{ sent: number; answered: number; ms: number }> {
  let answered = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    for (const session of sessions) {
      session.client.onFrame = (frame) => {
        if (frame.type === "pong" && ++answered === sessions.length) {
          clearTimeout(timer);
          resolve();
        }
        return true;
      };
      session.client.send(KEEPALIVE_PING);
    }
  });
  return { sent: sessions.length, answered, ms: performance.now() - started };
}
