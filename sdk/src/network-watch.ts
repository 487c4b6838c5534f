/**
 * Browser hints that the network changed (`online`, and the Network Information API's `change` where it exists).
 * The client answers by reconnecting at once if its signaling socket is down, and by renewing the peer connection
 * if its path is gone (see Client). Outside a browser there is nothing to watch; ICE `disconnected`/`failed` still
 * triggers restarts.
 */
type Target = { addEventListener(type: string, listener: () => void): void; removeEventListener(type: string, listener: () => void): void };

export function watchNetwork(onChange: () => void): () => void {
  const targets: [Target, string][] = [];
  const scope = globalThis as { addEventListener?: unknown; navigator?: { connection?: Partial<Target> } };
  if (typeof scope.addEventListener === "function" && typeof window !== "undefined") targets.push([scope as Target, "online"]);
  const connection = scope.navigator?.connection;
  if (typeof connection?.addEventListener === "function") targets.push([connection as Target, "change"]);
  for (const [target, type] of targets) target.addEventListener(type, onChange);
  return () => {
    for (const [target, type] of targets) target.removeEventListener(type, onChange);
  };
}

/** The browser knows it has no network (`navigator.onLine === false`): offering a new peer connection is pointless. */
export function isOffline(): boolean {
  return (globalThis as { navigator?: { onLine?: unknown } }).navigator?.onLine === false;
}
