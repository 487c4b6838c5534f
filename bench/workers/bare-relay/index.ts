/**
 * The reference for the relay benchmark: one hibernatable Durable Object per pair that forwards every frame from
 * /pair/<id>/client to /pair/<id>/peer and back, untouched — no auth, no parsing. With `?writes=1` it also stores
 * one row per frame, to show what a single storage write per message costs here.
 */
import { DurableObject } from "cloudflare:workers";

interface Env {
  BARE_RELAY: DurableObjectNamespace<BareRelay>;
}

export class BareRelay extends DurableObject<Env> {
  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const role = url.pathname.endsWith("/client") ? "client" : "peer";
    const [outside, inside] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(inside, [role]);
    inside.serializeAttachment({ role, writes: url.searchParams.get("writes") === "1" });
    if (url.searchParams.get("writes") === "1") {
      this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS frames (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    }
    return new Response(null, { status: 101, webSocket: outside });
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const { role, writes } = ws.deserializeAttachment() as { role: string; writes: boolean };
    // seq is the rowid, chosen by SQLite: a counter in memory would start again at 1 after the object hibernates.
    if (writes) this.ctx.storage.sql.exec("INSERT INTO frames (body) VALUES (?)", message);
    for (const other of this.ctx.getWebSockets(role === "client" ? "peer" : "client")) other.send(message);
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/health") return new Response("ok");
    const pair = /^\/pair\/([\w-]+)\/(client|peer)$/.exec(url.pathname);
    if (!pair || request.headers.get("Upgrade") !== "websocket") return new Response("not found", { status: 404 });
    return env.BARE_RELAY.getByName(pair[1]!).fetch(request);
  },
} satisfies ExportedHandler<Env>;
