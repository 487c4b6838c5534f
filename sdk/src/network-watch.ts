/**
 * Browser hints that the network changed (`online`, and the Network Information API's `change` where it exists).
 * The path the media took may be gone even though nothing failed yet: the client answers with an ICE restart.
 * Outside a browser there is nothing to watch; ICE `disconnected`/`failed` still triggers restarts.
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
