/**
 * The floor for relay latency: a raw WebSocket relay in one Node process. A client at /client/<pair> and a peer at
 * /peer/<pair> are joined; every frame is forwarded to the other side untouched. No auth, no parsing, no storage.
 * Prints its port once listening. Usage: node bench/floor/ws-relay.ts
 */
import { WebSocketServer, type WebSocket } from "ws";

const pairs = new Map<string, { client?: WebSocket; peer?: WebSocket }>();
const server = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });

server.on("connection", (ws, request) => {
  const [, role, pair = ""] = (request.url ?? "").split("/");
  const ends = pairs.get(pair) ?? {};
  pairs.set(pair, ends);
  if (role === "client") ends.client = ws;
  else ends.peer = ws;
  ws.on("message", (data, isBinary) => {
    const other = role === "client" ? ends.peer : ends.client;
    other?.send(data, { binary: isBinary });
  });
  ws.on("close", () => pairs.delete(pair));
});

server.on("listening", () => {
  const address = server.address();
  console.log(typeof address === "object" && address ? address.port : address);
});
