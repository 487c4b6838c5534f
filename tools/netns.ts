/**
 * Real networks on one machine: Linux network namespaces joined by veth pairs, routers that NAT with nftables, and
 * links that delay, jitter and drop packets. Tests and the bench build a topology, run Chromium, the runtime agent
 * or anything else inside its namespaces (`host.command(…)`), and tear it down — also when they fail or are killed.
 *
 *   root namespace (the test, the gateway, coturn) ── rx<k> 198.18.k.1/24
 *        │ veth
 *   internet namespace: a bridge ── routers' WAN sides 198.18.k.(11…99), public hosts 198.18.k.(101…250)
 *        │ veth (through a wire namespace when the link has a profile)
 *   router namespace: NAT and firewall (nftables) ── LAN 198.19.k.(16n)/28 (n = 1…15, then repeating)
 *        │ veth
 *   host namespace: 198.19.k.(16n+2), default route via its router
 *
 * Every address is in 198.18.0.0/15 (reserved for network tests, RFC 2544) and lives only in the namespaces made
 * here or on the root side of the one veth pair; the internet namespace has no default route, so nothing sent
 * inside a topology can reach the machine's real interfaces.
 *
 * Why not `tc netem`: this machine's kernel is built without it (CONFIG_NET_SCH_NETEM is not set), so a link with a
 * profile runs through a wire namespace where a small user-space bridge (netns-wire.py, Python's standard library
 * only) delays, jitters and drops frames. Loss alone would fit in nftables; delay needs a queue.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ManagedChild } from "../scripts/lib/supervisor.ts";

const run = promisify(execFile);
const WIRE = path.join(path.dirname(fileURLToPath(import.meta.url)), "netns-wire.py");

/**
 * How a router maps and filters (RFC 4787's terms):
 * - "full-cone": endpoint-independent mapping and filtering — anyone may send to a mapped port.
 * - "port-restricted": endpoint-independent mapping, address-and-port-dependent filtering (Linux conntrack).
 * - "symmetric": endpoint-dependent mapping — a new random port per destination (masquerade fully-random).
 */
export type NatKind = "full-cone" | "port-restricted" | "symmetric";

/** What a router lets out: everything, everything but UDP, or only TCP to port 443 (and to `allowTcp`). */
export type Firewall = "open" | "no-udp" | "tcp-443-only";

/** One direction's share of a link's trouble; the profile applies to both directions. */
export interface LinkProfile {
  /** One-way delay (ms): a 150 ms round trip is 75. */
  delayMs?: number;
  /** Up to ± this much (ms) added to each frame's delay, uniformly; frames keep their order. */
  jitterMs?: number;
  /** Frames dropped per direction, in percent. */
  lossPercent?: number;
}

export interface RouterOptions {
  nat: NatKind;
  firewall?: Firewall;
  /** With "tcp-443-only": further TCP ports of the server address to allow (the gateway's, standing in for HTTPS). */
  allowTcp?: number[];
  /** Seconds a UDP mapping lives without traffic (conntrack; Linux's default is 30, 120 once both sides spoke). */
  udpMappingTimeoutS?: number;
}

export interface Router {
  readonly name: string;
  readonly ns: string;
  /** Its address on the internet: every host behind it appears as this. */
  readonly publicAddress: string;
  readonly options: RouterOptions;
}

export interface Host {
  readonly name: string;
  readonly ns: string;
  /** Its own address (private behind a router, public on the internet). */
  readonly address: string;
  /** The address the internet sees it as. */
  readonly publicAddress: string;
  /** The router it is behind now (undefined: on the internet). */
  readonly router: Router | undefined;
  /** `command` run inside the host's namespace: for spawn, ManagedChild or a launcher script. */
  command(command: string, args: string[]): { command: string; args: string[] };
  /** Runs a command inside the namespace and returns its stdout. */
  exec(command: string, args: string[]): Promise<string>;
  /**
   * Moves the host behind another router (or onto the internet), as a phone moves from Wi-Fi to cellular: the old
   * link goes down and away, a new one comes up with a new address. Open connections break, as they do.
   */
  moveTo(router: Router | "internet", link?: LinkProfile): Promise<void>;
  /**
   * For `ms`, the host's router passes nothing from it or from the internet (a tunnel, a lift; other hosts behind the
   * same router go dark too): the links stay up and nothing is told, packets are just lost — long enough, and the
   * router's mappings for the host expire. Behind a router only.
   */
  blackout(ms: number): Promise<void>;
}

export interface HostOptions {
  /** A router made with `addRouter`, or "internet" for a public host (default). */
  behind?: Router | "internet";
  /** Delay, jitter and loss on the host's link. */
  link?: LinkProfile;
}

export interface Topology {
  /** The root namespace's address on the topology's internet: bind the gateway, coturn and test pages here. */
  readonly serverAddress: string;
  addRouter(name: string, options: RouterOptions): Promise<Router>;
  addHost(name: string, options?: HostOptions): Promise<Host>;
  /** Removes every namespace (and so every interface) of the topology. Idempotent. */
  destroy(): Promise<void>;
}

/** Why the harness cannot run here, or undefined when it can: root (or CAP_NET_ADMIN) and the programs it uses. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  for (const [program, args] of [
    ["ip", ["-V"]],
    ["nft", ["--version"]],
    ["python3", ["--version"]],
    ["ethtool", ["--version"]],
  ] as const) {
    try {
      await run(program, [...args]);
    } catch {
      return `${program} is not installed (npm run provision installs it)`;
    }
  }
  const probe = `rxprobe${process.pid}`;
  try {
    await run("ip", ["netns", "add", probe]);
    await run("ip", ["netns", "del", probe]);
  } catch (error) {
    return `cannot create a network namespace (needs root or CAP_NET_ADMIN): ${firstLine(error)}`;
  }
  return undefined;
}

const NAME = /^rx(\d+)p(\d+)-/;

/** Deletes namespaces left by topologies whose process is gone (a test runner killed before its teardown). */
export async function sweepAbandoned(): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  const abandoned = stdout
    .split("\n")
    .map((line) => line.split(" ")[0]!)
    .filter((name) => {
      const owner = NAME.exec(name)?.[2];
      return owner !== undefined && !processAlive(Number(owner));
    });
  for (const name of abandoned) await run("ip", ["netns", "del", name]).catch(() => undefined);
  return abandoned;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function createTopology(): Promise<Topology> {
  const unavailable = await netnsUnavailable();
  if (unavailable) throw new Error(`the network harness cannot run: ${unavailable}`);
  await sweepAbandoned();
  const k = await claimIndex();
  const prefix = `rx${k}p${process.pid}-`;
  const keeper = startKeeper(prefix);
  const namespaces: string[] = [];
  const children: ManagedChild[] = [];
  let destroyed: Promise<void> | undefined;
  let routers = 0;
  let hosts = 0;
  let publicHosts = 0;
  let links = 0;

  const destroy = () =>
    (destroyed ??= (async () => {
      await Promise.all(children.map((child) => child.stop()));
      for (const ns of namespaces.reverse()) await run("ip", ["netns", "del", ns]).catch(() => undefined);
      await run("ip", ["link", "del", "dev", `rx${k}`]).catch(() => undefined);
      await keeper.stop();
    })());

  const addNamespace = async (role: string): Promise<string> => {
    const ns = `${prefix}${role}`;
    await run("ip", ["netns", "add", ns]);
    namespaces.push(ns);
    // IPv4 only: no link-local IPv6 addresses whose duplicate-address detection ends a second after a link comes up
    // — Chromium takes that for a network change and aborts what it is loading (ERR_NETWORK_CHANGED).
    await nsExec(ns, "sysctl", ["-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
    await ip(ns, "link", "set", "dev", "lo", "up");
    return ns;
  };

  /** A veth pair from `a` (named `aName`) to `b` (named `bName`), both up. */
  const veth = async (a: string, aName: string, b: string, bName: string) => {
    await run("ip", ["link", "add", "name", aName, "netns", a, "type", "veth", "peer", "name", bName, "netns", b]);
    await ip(a, "link", "set", "dev", aName, "up");
    await ip(b, "link", "set", "dev", bName, "up");
  };

  /**
   * Joins `a` and `b` with a link: a plain veth pair, or — with a profile — two pairs through a wire namespace
   * whose bridge process delays and drops frames both ways.
   */
  const link = async (a: string, aName: string, b: string, bName: string, profile: LinkProfile | undefined): Promise<void> => {
    if (!hasTrouble(profile)) return veth(a, aName, b, bName);
    const wire = await addNamespace(`wire${++links}`);
    await veth(a, aName, wire, "wa");
    await veth(wire, "wb", b, bName);
    // The bridge copies whole frames: no offloads that hand it 64 KiB super-frames or leave checksums to hardware.
    for (const [ns, name] of [
      [a, aName],
      [wire, "wa"],
      [wire, "wb"],
      [b, bName],
    ] as const) {
      await nsExec(ns, "ethtool", ["-K", name, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]);
    }
    await ip(wire, "link", "set", "dev", "wa", "promisc", "on");
    await ip(wire, "link", "set", "dev", "wb", "promisc", "on");
    const child = new ManagedChild(
      {
        name: `wire${links}`,
        command: "ip",
        args: [
          "netns",
          "exec",
          wire,
          "python3",
          "-u",
          WIRE,
          "wa",
          "wb",
          String(profile?.delayMs ?? 0),
          String(profile?.jitterMs ?? 0),
          String(profile?.lossPercent ?? 0),
        ],
      },
      (name, line) => process.stderr.write(`[${name}] ${line}\n`),
    );
    children.push(child);
    let exited = false;
    void child.exited.then(() => (exited = true));
    await waitForWire(wire, () => exited);
  };

  try {
    const inet = await addNamespace("inet");
    await ip(inet, "link", "add", "name", "br0", "type", "bridge");
    await ip(inet, "link", "set", "dev", "br0", "up");
    await run("ip", ["link", "set", "dev", `rx${k}i`, "netns", inet]);
    await ip(inet, "link", "set", "dev", `rx${k}i`, "name", "root");
    await ip(inet, "link", "set", "dev", "root", "master", "br0", "up");
    await run("ip", ["addr", "add", `198.18.${k}.1/24`, "dev", `rx${k}`]);
    await run("ip", ["link", "set", "dev", `rx${k}`, "up"]);
  } catch (error) {
    await destroy();
    throw error;
  }
  const inet = `${prefix}inet`;

  /** Puts `ns`'s end `name` of a fresh link on the internet bridge with `address`. */
  const attachToInternet = async (ns: string, name: string, address: string, profile?: LinkProfile) => {
    const port = `p${routers + hosts}${Math.random().toString(36).slice(2, 6)}`;
    await link(ns, name, inet, port, profile);
    await ip(inet, "link", "set", "dev", port, "master", "br0");
    await ip(ns, "addr", "add", `${address}/24`, "dev", name);
  };

  const topology: Topology = {
    serverAddress: `198.18.${k}.1`,

    async addRouter(name, options) {
      const n = ++routers;
      if (n > 89) throw new Error("at most 89 routers per topology");
      const ns = await addNamespace(`r-${name}`);
      const publicAddress = `198.18.${k}.${10 + n}`;
      await attachToInternet(ns, "wan", publicAddress);
      await ip(ns, "link", "add", "name", "lan", "type", "bridge");
      // Private networks may overlap, as homes' 192.168.1.0/24 do: 15 distinct ones, then they repeat.
      const lanIndex = ((n - 1) % 15) + 1;
      await ip(ns, "addr", "add", `198.19.${k}.${16 * lanIndex + 1}/28`, "dev", "lan");
      await ip(ns, "link", "set", "dev", "lan", "up");
      await nsExec(ns, "sysctl", ["-q", "-w", "net.ipv4.ip_forward=1"]);
      if (options.udpMappingTimeoutS !== undefined) {
        const seconds = String(options.udpMappingTimeoutS);
        await nsExec(ns, "sysctl", [
          "-q",
          "-w",
          `net.netfilter.nf_conntrack_udp_timeout=${seconds}`,
          `net.netfilter.nf_conntrack_udp_timeout_stream=${seconds}`,
        ]);
      }
      const router: Router & { index: number; lanHosts: number } = { name, ns, publicAddress, options, index: lanIndex, lanHosts: 0 };
      await loadRules(router, topology.serverAddress, undefined);
      return router;
    },

    async addHost(name, options = {}) {
      const ns = await addNamespace(`h-${name}`);
      const index = ++hosts;
      let generation = 0;
      let state: { router: (Router & { index: number; lanHosts: number }) | undefined; address: string; iface: string };

      const attach = async (behind: Router | "internet", profile: LinkProfile | undefined) => {
        const iface = `eth${generation++}`;
        if (behind === "internet") {
          if (publicHosts >= 150) throw new Error("at most 150 public host addresses per topology");
          const address = `198.18.${k}.${100 + ++publicHosts}`;
          await attachToInternet(ns, iface, address, profile);
          state = { router: undefined, address, iface };
          return;
        }
        const router = behind as Router & { index: number; lanHosts: number };
        const slot = ++router.lanHosts;
        if (slot > 13) throw new Error(`router ${router.name}: at most 13 hosts`);
        const port = `h${index}g${generation}`;
        await link(ns, iface, router.ns, port, profile);
        await ip(router.ns, "link", "set", "dev", port, "master", "lan");
        const address = `198.19.${k}.${16 * router.index + 1 + slot}`;
        await ip(ns, "addr", "add", `${address}/28`, "dev", iface);
        await ip(ns, "route", "add", "default", "via", `198.19.${k}.${16 * router.index + 1}`);
        if (router.options.nat === "full-cone") await loadRules(router, topology.serverAddress, address);
        state = { router, address, iface };
      };
      await attach(options.behind ?? "internet", options.link);

      return {
        name,
        ns,
        get address() {
          return state.address;
        },
        get publicAddress() {
          return state.router?.publicAddress ?? state.address;
        },
        get router() {
          return state.router;
        },
        command: (command, args) => ({ command: "ip", args: ["netns", "exec", ns, command, ...args] }),
        exec: (command, args) => nsExec(ns, command, args),
        async moveTo(router, profile) {
          const old = state.iface;
          await ip(ns, "link", "del", "dev", old);
          await attach(router, profile);
        },
        async blackout(ms) {
          const router = state.router;
          if (!router) throw new Error(`${name} is on the internet: a blackout needs a router to drop its packets`);
          const table = `blackout_${index}`;
          const address = state.address;
          await nsExec(router.ns, "nft", ["-f", "-"], blackoutRules(table, address));
          await new Promise((resolve) => setTimeout(resolve, ms));
          await nsExec(router.ns, "nft", ["delete", "table", "inet", table]);
        },
      };
    },

    destroy,
  };
  return topology;
}

function hasTrouble(profile: LinkProfile | undefined): boolean {
  return Boolean(profile && ((profile.delayMs ?? 0) > 0 || (profile.jitterMs ?? 0) > 0 || (profile.lossPercent ?? 0) > 0));
}

/** nftables for a router: NAT on the way out (and in, for full cone), then the firewall. */
function routerRules(router: Router, serverAddress: string, fullConeHost: string | undefined): string {
  const { nat, firewall = "open", allowTcp = [] } = router.options;
  const masquerade = nat === "symmetric" ? "masquerade fully-random" : "masquerade";
  const lines = [
    "flush ruleset",
    "table ip nat {",
    "  chain post { type nat hook postrouting priority srcnat; policy accept;",
    `    oifname "wan" ${masquerade}`,
    "  }",
  ];
  if (nat === "full-cone" && fullConeHost) {
    // Whatever arrives on the WAN side for a port the host uses goes to it, whoever sent it.
    lines.push(
      "  chain pre { type nat hook prerouting priority dstnat; policy accept;",
      `    iifname "wan" meta l4proto udp dnat to ${fullConeHost}`,
      "  }",
    );
  }
  lines.push("}", "table inet filter {", "  chain forward { type filter hook forward priority filter; policy accept;");
  if (firewall === "no-udp") lines.push('    iifname "lan" meta l4proto udp drop');
  if (firewall === "tcp-443-only") {
    const ports = [443, ...allowTcp].join(", ");
    lines.push(
      "    ct state established,related accept",
      `    iifname "lan" ip daddr ${serverAddress} tcp dport { ${ports} } accept`,
      `    iifname "lan" tcp dport 443 accept`,
      '    iifname "lan" drop',
    );
  }
  lines.push("  }", "}");
  return `${lines.join("\n")}\n`;
}

/**
 * Drops everything from `address` on the LAN and everything arriving from the internet (so other hosts behind the
 * same router go dark too), before NAT and connection tracking see it.
 */
function blackoutRules(table: string, address: string): string {
  return [
    `table inet ${table} {`,
    // Before connection tracking (raw < conntrack), so no packet refreshes the host's mappings: the host's own on
    // the LAN side, and everything arriving on the WAN side (its destination is still the router's address there).
    "  chain prerouting { type filter hook prerouting priority raw; policy accept;",
    `    iifname "lan" ip saddr ${address} drop`,
    '    iifname "wan" drop',
    "  }",
    "}",
    "",
  ].join("\n");
}

async function loadRules(router: Router, serverAddress: string, fullConeHost: string | undefined): Promise<void> {
  await nsExec(router.ns, "nft", ["-f", "-"], routerRules(router, serverAddress, fullConeHost));
}

async function ip(ns: string, ...args: string[]): Promise<void> {
  await run("ip", ["-n", ns, ...args]);
}

function nsExec(ns: string, command: string, args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", ns, command, ...args], { stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk));
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${command} ${args.join(" ")} in ${ns}: exit ${code}: ${stderr.trim()}`)),
    );
    if (stdin !== undefined) {
      child.stdin!.on("error", () => undefined); // it exited without reading: its exit code tells
      child.stdin!.end(stdin);
    }
  });
}

/**
 * The topology's index k (its addresses are 198.18.k.0/24 and 198.19.k.0/24): the first for which we manage to
 * create the root side's veth pair `rx<k>` / `rx<k>i` — the kernel refuses a name twice, so two test files never
 * share an index.
 */
async function claimIndex(): Promise<number> {
  const start = process.pid % 200;
  for (let i = 0; i < 200; i++) {
    const k = 10 + ((start + i) % 200);
    try {
      await run("ip", ["link", "add", "name", `rx${k}`, "type", "veth", "peer", "name", `rx${k}i`]);
      return k;
    } catch {
      // taken
    }
  }
  throw new Error("no free topology index (200 topologies at once?)");
}

/**
 * A tethered process that deletes this topology's namespaces when it is stopped — by `destroy()`, or by the tether
 * when the test runner dies without running its teardown (scripts/lib/tether.ts).
 */
function startKeeper(prefix: string): ManagedChild {
  const sweep = `for ns in $(ip netns list | cut -d' ' -f1 | grep '^${prefix}'); do ip netns del "$ns"; done`;
  return new ManagedChild(
    { name: "netns-keeper", command: "sh", args: ["-c", `trap '${sweep}; exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`] },
    () => undefined,
  );
}

async function waitForWire(wire: string, exited: () => boolean): Promise<void> {
  // The bridge binds its two raw sockets within milliseconds; a frame sent before then would be lost, so wait for it.
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const sockets = await nsExec(wire, "cat", ["/proc/net/packet"]).catch(() => "");
    if (sockets.trim().split("\n").length >= 3) return;
    if (exited()) throw new Error(`the link emulator in ${wire} exited`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the link emulator in ${wire} did not start`);
}

function firstLine(error: unknown): string {
  const text = (error as { stderr?: string }).stderr || (error as Error).message;
  return String(text).trim().split("\n")[0] ?? "";
}

/** A launcher script that runs Chromium inside `host`'s namespace, for launchBrowser's `executablePath`. */
export async function chromiumIn(
  host: Host,
  chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "chromium-netns-"));
  const script = path.join(dir, "chromium");
  await writeFile(script, `#!/bin/sh\nexec ip netns exec ${host.ns} ${chromium} "$@"\n`, { mode: 0o755 });
  return { path: script, remove: () => rm(dir, { recursive: true, force: true }) };
}
