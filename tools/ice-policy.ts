/**
 * An init script for test pages that shapes every RTCPeerConnection the page makes, without touching the client
 * library: relay-only ICE, only some of the ICE server URLs kept (to force TURN over UDP, TCP or TLS), or a
 * replacement TURN credential (wrong or expired). It also keeps every peer connection on `window.__peerConnections`
 * so a test can read the selected candidate pair from getStats().
 *
 *   await page.addInitScript(shapeIceScript, { relayOnly: true, keepUrls: "transport=tcp" });
 */
import type { Page } from "playwright-core";

export interface IceShape {
  relayOnly?: boolean;
  /** Regular expression source: ICE server URLs that do not match are dropped. */
  keepUrls?: string;
  /** Replaces the username/credential of every server that has one. */
  credential?: { username: string; credential: string };
}

export function shapeIceScript(shape: IceShape): void {
  const Native = window.RTCPeerConnection;
  const keep = shape.keepUrls ? new RegExp(shape.keepUrls) : undefined;
  const reshape = (config: RTCConfiguration = {}): RTCConfiguration => ({
    ...config,
    ...(shape.relayOnly && { iceTransportPolicy: "relay" }),
    iceServers: (config.iceServers ?? [])
      .map((server) => ({
        ...server,
        urls: ([] as string[]).concat(server.urls).filter((url) => !keep || keep.test(url)),
        ...(shape.credential && server.username !== undefined && shape.credential),
      }))
      .filter((server) => server.urls.length > 0),
  });
  const created: RTCPeerConnection[] = [];
  (window as unknown as { __peerConnections: RTCPeerConnection[] }).__peerConnections = created;
  window.RTCPeerConnection = class extends Native {
    constructor(config?: RTCConfiguration) {
      super(reshape(config));
      created.push(this);
    }
    override setConfiguration(config?: RTCConfiguration): void {
      super.setConfiguration(reshape(config));
    }
  } as typeof RTCPeerConnection;
}

export interface SelectedPair {
  local: { candidateType: string; relayProtocol?: string; protocol: string };
  remote: { candidateType: string };
}

/** The selected candidate pair of the page's newest connected peer connection, or null. */
export function selectedPair(page: Page): Promise<SelectedPair | null> {
  return page.evaluate(async () => {
    const all = (window as unknown as { __peerConnections: RTCPeerConnection[] }).__peerConnections ?? [];
    for (const pc of [...all].reverse()) {
      if (pc.connectionState !== "connected") continue;
      const reports = [...(await pc.getStats()).values()] as (Record<string, unknown> & { type: string; id: string })[];
      const byId = new Map(reports.map((report) => [report.id, report]));
      const transport = reports.find((report) => report.type === "transport" && report.selectedCandidatePairId);
      const pair = transport ? byId.get(transport.selectedCandidatePairId as string) : undefined;
      if (!pair) continue;
      const local = byId.get(pair.localCandidateId as string)!;
      const remote = byId.get(pair.remoteCandidateId as string)!;
      return {
        local: {
          candidateType: local.candidateType as string,
          relayProtocol: local.relayProtocol as string | undefined,
          protocol: local.protocol as string,
        },
        remote: { candidateType: remote.candidateType as string },
      };
    }
    return null;
  });
}
