/**
 * The peer in the side-by-side benchmark: a PeerJS server (npm `peer`), the signaling server most hobby projects
 * pick, as its README starts it, on a free loopback port. Clients connect at /peerjs?key=peerjs&id=…&token=…, and
 * it forwards OFFER, ANSWER and CANDIDATE messages to the client named in `dst`. Prints its port once listening.
 * The connection limit is raised from its default (5,000) so the 1,000-session runs fit with room to spare.
 * Usage: node bench/peers/peerjs-server.ts
 */
import type { AddressInfo } from "node:net";
import { PeerServer } from "peer";

PeerServer({ host: "127.0.0.1", port: 0, path: "/", concurrent_limit: 100_000 }, (server) => {
  console.log((server.address() as AddressInfo).port);
});
