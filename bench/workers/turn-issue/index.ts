/**
 * Bench Worker for the TURN credential suite. GET /issue?n=N&mode=ours|floor issues N credentials in one request:
 *   - ours:  iceServersFor() from src/ice-servers.ts with the coturn provider configured (two TURN hosts, STUN),
 *            exactly as the gateway runs it for `ice_servers` and `POST /v1/turn-credentials`: settings read,
 *            expiry capped, username built, HMAC-SHA1, the RTCIceServer list assembled;
 *   - floor: one bare crypto.subtle.sign("HMAC") of a username with an already imported SHA-1 key, base64-encoded.
 * Clocks do not advance inside workerd while it computes, so the caller times requests from outside and subtracts
 * an N=0 request.
 *
 * Worker code built from the gateway's own sources, so it imports src/ (only the Worker, its Durable Objects, these
 * bench Workers and test/worker may).
 */
import { iceServersFor } from "../../../src/ice-servers.ts";

const MAX_N = 1_000_000;
const SECRET = "bench-turn-secret-0123456789";
const ENV = { STUN_URLS: "stun:stun.example.test:3478", TURN_SECRET: SECRET, TURN_HOSTS: "turn-eu.example.test,turn-us.example.test" };
const encoder = new TextEncoder();
let floorKey: Promise<CryptoKey> | undefined;

async function ours(n: number): Promise<number> {
  let sink = 0;
  for (let i = 0; i < n; i++) {
    const issued = await iceServersFor(ENV, { subject: `ses_bench${i}`, notAfter: 2_000_000_000 });
    sink += issued.iceServers.length;
  }
  return sink;
}

async function floor(n: number): Promise<number> {
  floorKey ??= crypto.subtle.importKey("raw", encoder.encode(SECRET), { name: "HMAC", hash: "SHA-1" }, false, ["sign"]);
  const key = await floorKey;
  let sink = 0;
  for (let i = 0; i < n; i++) {
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`1900000000:ses_bench${i}`)));
    sink += btoa(String.fromCharCode(...mac)).length;
  }
  return sink;
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/health") return new Response("ok");
    if (url.pathname !== "/issue") return new Response("not found", { status: 404 });
    const n = Number(url.searchParams.get("n") ?? "0");
    const mode = url.searchParams.get("mode");
    if (!Number.isInteger(n) || n < 0 || n > MAX_N) return new Response("bad n", { status: 400 });
    if (mode !== "ours" && mode !== "floor") return new Response("bad mode", { status: 400 });
    const sink = mode === "ours" ? await ours(n) : await floor(n);
    return new Response(String(sink));
  },
};
