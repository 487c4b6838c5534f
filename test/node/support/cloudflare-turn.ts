/**
 * A loopback stand-in for Cloudflare Realtime TURN's credential API, speaking its documented shape:
 * `POST /v1/turn/keys/<key id>/credentials/generate-ice-servers`, `Authorization: Bearer <api token>`, body
 * `{ ttl }` → 201 `{ iceServers: [...] }`. `behaviour` switches how it answers, so one gateway can be driven
 * through the provider's failure modes. The TURN URLs it hands out point at `turnUrls` (a real coturn in e2e tests).
 * The worker tests reach it through the control routes below (started by cloudflare-turn-setup.ts).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Where a test outside this process sets `behaviour` (PUT, the name as the body) and reads `requests` (GET). */
export const CONTROL_BEHAVIOUR = "/__stand-in/behaviour";
export const CONTROL_REQUESTS = "/__stand-in/requests";

export type StandInBehaviour = "ok" | "port53-only" | "error-500" | "unauthorized" | "garbage" | "hang";

export interface CloudflareTurnStandIn {
  url: string;
  keyId: string;
  apiToken: string;
  behaviour: StandInBehaviour;
  /** Every credential request it received (ttl asked, authorization accepted). */
  readonly requests: { ttl: unknown; authorized: boolean }[];
  close(): Promise<void>;
}

export async function startCloudflareTurnStandIn(
  options: { turnUrls?: string[]; username?: string; credential?: string } = {},
): Promise<CloudflareTurnStandIn> {
  const keyId = "test-turn-key-id";
  const apiToken = "test-turn-api-token";
  const turnUrls = options.turnUrls ?? [
    "turn:turn.example.test:3478?transport=udp",
    "turn:turn.example.test:53?transport=udp",
    "turn:turn.example.test:3478?transport=tcp",
    "turns:turn.example.test:5349?transport=tcp",
    "turns:turn.example.test:443?transport=tcp",
  ];
  const requests: { ttl: unknown; authorized: boolean }[] = [];
  const hanging = new Set<ServerResponse>();

  const answer = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { "Content-Type": "application/json" });
    response.end(typeof body === "string" ? body : JSON.stringify(body));
  };

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let text = "";
    request.on("data", (chunk: Buffer) => (text += chunk.toString()));
    request.on("end", () => {
      // Control routes, for tests that cannot reach this object (test/worker runs inside workerd): not recorded.
      if (request.url === CONTROL_BEHAVIOUR && request.method === "PUT") {
        standIn.behaviour = text as StandInBehaviour;
        return answer(response, 204, "");
      }
      if (request.url === CONTROL_REQUESTS && request.method === "GET") return answer(response, 200, requests);
      const expectedPath = `/v1/turn/keys/${keyId}/credentials/generate-ice-servers`;
      if (request.method !== "POST" || request.url !== expectedPath) return answer(response, 404, { errors: ["not found"] });
      const authorized = request.headers.authorization === `Bearer ${apiToken}`;
      let ttl: unknown;
      try {
        ttl = (JSON.parse(text) as { ttl?: unknown }).ttl;
      } catch {
        ttl = undefined;
      }
      requests.push({ ttl, authorized });
      if (!authorized || standIn.behaviour === "unauthorized") return answer(response, 401, { errors: ["unauthorized"] });
      if (typeof ttl !== "number") return answer(response, 400, { errors: ["ttl is required"] });
      switch (standIn.behaviour) {
        case "error-500":
          return answer(response, 500, { errors: ["internal"] });
        case "garbage":
          return answer(response, 201, "<html>not json</html>");
        case "hang":
          hanging.add(response);
          return;
        case "port53-only":
          return answer(response, 201, { iceServers: [{ urls: ["stun:stun.example.test:53"] }] });
        case "ok":
          return answer(response, 201, {
            iceServers: [
              { urls: ["stun:stun.example.test:3478", "stun:stun.example.test:53"] },
              {
                urls: turnUrls,
                username: options.username ?? `cf-user-${requests.length}`,
                credential: options.credential ?? "cf-credential",
              },
            ],
          });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const standIn: CloudflareTurnStandIn = {
    url: `http://127.0.0.1:${port}`,
    keyId,
    apiToken,
    behaviour: "ok",
    requests,
    close: async () => {
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return standIn;
}
