/**
 * A real TURN server for end-to-end tests and the bench: Debian's coturn (`turnserver`) on loopback (or a topology's
 * server address), in TURN REST-API secret mode
 * (`use-auth-secret`) with a secret generated per test run, TURN over UDP/TCP on one port and over TLS on another
 * with a self-signed certificate made by openssl. Its log (stdout, kept in memory) shows every allocation, so a test
 * can prove media was relayed through it. Started through the tether (scripts/lib/supervisor.ts), so it never outlives the test.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../scripts/lib/http.ts";
import { ManagedChild } from "../scripts/lib/supervisor.ts";

const run = promisify(execFile);

export interface Coturn {
  host: string;
  /** TURN over UDP and TCP. */
  port: number;
  /** TURN over TLS (`turns:`). */
  tlsPort: number;
  secret: string;
  realm: string;
  /** For the gateway's TURN_HOSTS. */
  turnHosts: string;
  /** The log so far. */
  log(): Promise<string>;
  /** The username of every allocation coturn granted (`<expiry>:<subject>`), oldest first. */
  allocations(): Promise<string[]>;
  stop(): Promise<void>;
}

async function selfSignedCertificate(dir: string, host: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, "turn-cert.pem");
  const key = path.join(dir, "turn-key.pem");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    `subjectAltName=DNS:localhost,IP:127.0.0.1${host === "127.0.0.1" ? "" : `,IP:${host}`}`,
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  return { cert, key };
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export interface CoturnOptions {
  workRoot?: string;
  /** The address it listens, relays and advertises on (default 127.0.0.1; a topology's server address in tools/netns.ts). */
  host?: string;
  /** TURN over UDP and TCP (default a free port). */
  port?: number;
  /** TURN over TLS (default a free port; 443 to pass a firewall that lets only HTTPS out). */
  tlsPort?: number;
}

export async function startCoturn(options: CoturnOptions = {}): Promise<Coturn> {
  const dir = await mkdtemp(path.join(options.workRoot ?? tmpdir(), "coturn-"));
  const host = options.host ?? "127.0.0.1";
  const { cert, key } = await selfSignedCertificate(dir, host);
  const port = options.port ?? (await freePort());
  const tlsPort = options.tlsPort ?? (await freePort());
  const relayBase = 40000 + Math.floor(Math.random() * 20000);
  const secret = randomBytes(24).toString("base64url");
  const realm = "reactor.test";
  const lines: string[] = [];
  const child = new ManagedChild(
    {
      name: "coturn",
      command: "turnserver",
      args: [
        "-n", // no /etc/turnserver.conf (Debian's sends the log to syslog)
        "--listening-ip",
        host,
        "--relay-ip",
        host,
        "--external-ip",
        host,
        "--listening-port",
        String(port),
        "--tls-listening-port",
        String(tlsPort),
        "--min-port",
        String(relayBase),
        "--max-port",
        String(relayBase + 200),
        "--use-auth-secret",
        "--static-auth-secret",
        secret,
        "--realm",
        realm,
        "--cert",
        cert,
        "--pkey",
        key,
        "--allow-loopback-peers",
        "--no-cli",
        "--no-multicast-peers",
        "--no-dtls",
        "--fingerprint",
        "--log-file",
        "stdout",
        "--verbose",
        "--no-software-attribute",
        "--pidfile",
        path.join(dir, "turnserver.pid"),
        "--userdb",
        path.join(dir, "turndb"),
      ],
      cwd: dir,
    },
    (_name, line) => lines.push(line),
  );
  const deadline = Date.now() + 15_000;
  while (!(await portOpen(host, port)) || !(await portOpen(host, tlsPort))) {
    const exited = await Promise.race([child.exited, new Promise((resolve) => setTimeout(() => resolve(undefined), 100))]);
    if (exited) throw new Error(`turnserver exited at start:\n${lines.slice(-20).join("\n")}`);
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`turnserver did not listen on ${port}/${tlsPort} within 15 s:\n${lines.slice(-20).join("\n")}`);
    }
  }

  const log = async () => lines.join("\n");
  let stopped: Promise<void> | undefined;
  return {
    host,
    port,
    tlsPort,
    secret,
    realm,
    turnHosts: `${host}:${port}:${tlsPort}`,
    log,
    async allocations() {
      // "session 001000000000000002: realm <reactor.test> user <1700000000:sess_x>: incoming packet ALLOCATE processed, success"
      const usernames: string[] = [];
      for (const line of lines) {
        const match = /user <([^>]*)>: incoming packet ALLOCATE processed, success/.exec(line);
        if (match) usernames.push(match[1]!);
      }
      return usernames;
    },
    stop: () => (stopped ??= child.stop(5000).then(() => rm(dir, { recursive: true, force: true }))),
  };
}
