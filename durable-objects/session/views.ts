/** How a session record looks from outside: the REST body (`SessionResponse`) and the native client's `status`. */
import type { SessionResponse } from "../../protocol/sessions.ts";
import type { ServerFrame } from "../../protocol/signaling.ts";
import { GATEWAY_VERSION } from "../../src/config.ts";
import { isEnded } from "./lifecycle.ts";
import { CLUSTER, type SessionRecord } from "./record.ts";

export function sessionView(session: SessionRecord): SessionResponse {
  const assigned = session.runtime !== null && !isEnded(session.state);
  return {
    session_id: session.id,
    state: session.state,
    cluster: CLUSTER,
    model: { name: session.model, ...(session.runtime?.modelVersion && { version: session.runtime.modelVersion }) },
    server_info: { server_version: GATEWAY_VERSION },
    ...(assigned && {
      selected_transport: { protocol: "webrtc", version: "1.0" },
      capabilities: session.runtime!.capabilities,
    }),
    ...(session.reason && { reason: session.reason }),
    ...(session.queuePosition !== null && session.state === "WAITING" && { queue_position: session.queuePosition }),
  };
}

export function statusFrame(session: SessionRecord): ServerFrame {
  return {
    type: "status",
    state: session.state,
    ...(session.reason && { reason: session.reason }),
    ...(session.queuePosition !== null && session.state === "WAITING" && { queue_position: session.queuePosition }),
    ...(session.deadlines.grace !== undefined && { deadline: session.deadlines.grace }),
    ...(session.runtime && !isEnded(session.state) && { capabilities: session.runtime.capabilities }),
  };
}
