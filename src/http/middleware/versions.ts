/**
 * Protocol version negotiation, as the official client speaks it: coordinator calls carry `Reactor-API-Version`
 * and `Reactor-API-Accept-Version` (integers), transport calls `Reactor-WebRTC-Version` (major.minor). A version
 * older than we support → 426, newer → 501. Absent headers (curl, scripts) mean the current version.
 */
import { API_VERSIONS, WEBRTC_VERSIONS } from "../../config.ts";
import { ApiError } from "../../errors.ts";
import type { AppContext } from "../context.ts";

interface Range {
  min: number;
  max: number;
}

const describe = (range: Range) => (range.min === range.max ? `${range.min}` : `${range.min} to ${range.max}`);

function checkVersions(header: string, versions: number[], range: Range): void {
  if (versions.some((version) => version >= range.min && version <= range.max)) return;
  const newest = Math.max(...versions);
  if (newest < range.min) {
    throw new ApiError(
      "CLIENT_VERSION_TOO_OLD",
      `${header} ${newest} is no longer supported; this gateway speaks ${describe(range)}. Upgrade the client.`,
    );
  }
  throw new ApiError("SERVER_VERSION_TOO_OLD", `${header} ${Math.min(...versions)} is newer than this gateway, which speaks ${describe(range)}.`);
}

function parseVersions(header: string, value: string, pattern: RegExp): number[] {
  const versions = value.split(",").map((part) => pattern.exec(part.trim())?.[1]);
  if (versions.some((version) => version === undefined)) {
    throw new ApiError("INVALID_REQUEST", `${header} must be ${pattern === INTEGER ? "an integer" : "a version like 1.0"}.`);
  }
  return versions.map(Number);
}

const INTEGER = /^(\d{1,6})$/;
const MAJOR_MINOR = /^(\d{1,6})(?:\.\d{1,6})?$/;

const HEADERS: [name: string, pattern: RegExp, range: Range][] = [
  ["Reactor-API-Version", INTEGER, API_VERSIONS],
  ["Reactor-API-Accept-Version", INTEGER, API_VERSIONS],
  ["Reactor-WebRTC-Version", MAJOR_MINOR, WEBRTC_VERSIONS],
];

export async function negotiateVersions(c: AppContext, next: () => Promise<void>): Promise<void> {
  for (const [name, pattern, range] of HEADERS) {
    const value = c.req.header(name);
    if (value !== undefined) checkVersions(name, parseVersions(name, value, pattern), range);
  }
  await next();
}
