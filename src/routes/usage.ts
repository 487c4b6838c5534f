/**
 * Usage: the account's billed time and cost over a period (GET /v1/usage), and one session's (GET
 * /v1/sessions/{id}/usage). Both read the D1 ledger; a session's own view adds what its object has not written
 * there yet, and the segment still open.
 */
import type { Hono } from "hono";
import { SessionUsage, UsageReport } from "../../protocol/usage.ts";
import { ApiError } from "../errors.ts";
import { route, type AppContext, type AppEnv } from "../http/route.ts";
import { sessionSegments, usageSums, type GroupBy } from "../metering/ledger.ts";
import { accountFigures, sessionUsage, type PricedSegment } from "../metering/report.ts";
import { sessionStub } from "./sessions.ts";

const DAY_SECONDS = 86_400;
const DEFAULT_PERIOD_DAYS = 30;
const MAX_PERIOD_DAYS = 366;
const GROUPS: readonly GroupBy[] = ["model", "day"];

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/** A time in the query: Unix seconds, or an ISO 8601 date (UTC midnight) or date-time with its offset. */
function queryTime(c: AppContext, name: string): number | undefined {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "") return undefined;
  if (/^\d{1,12}$/.test(raw)) return Number(raw);
  const ms = ISO_DATE.test(raw) ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(ms)) throw new ApiError("INVALID_REQUEST", `${name}: expected Unix seconds or an ISO 8601 date, got ${JSON.stringify(raw)}.`);
  return Math.floor(ms / 1000);
}

function period(c: AppContext): { from: number; to: number } {
  const to = queryTime(c, "to") ?? Math.floor(Date.now() / 1000);
  const from = queryTime(c, "from") ?? to - DEFAULT_PERIOD_DAYS * DAY_SECONDS;
  if (from >= to) throw new ApiError("INVALID_REQUEST", "from must be before to.");
  if (to - from > MAX_PERIOD_DAYS * DAY_SECONDS) throw new ApiError("INVALID_REQUEST", `The period may span at most ${MAX_PERIOD_DAYS} days.`);
  return { from, to };
}

function groupBy(c: AppContext): GroupBy {
  const raw = c.req.query("group_by") || "model";
  if (!GROUPS.includes(raw as GroupBy)) throw new ApiError("INVALID_REQUEST", `group_by: expected one of ${GROUPS.join(", ")}.`);
  return raw as GroupBy;
}

export function usageRoutes(app: Hono<AppEnv>): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/usage",
      tag: "Usage",
      summary:
        "The account's billed time and cost for segments that started in [from, to) (Unix seconds or ISO 8601; default the " +
        "last 30 days), grouped by model or by UTC day (?group_by=model|day). Segments still open are not included.",
      auth: "bearer",
      responses: { 200: { description: "Usage per group, and the total.", schema: UsageReport } },
      errors: ["INVALID_REQUEST"], // bad from, to or group_by
    },
    async (c) => {
      const accountId = c.get("principal").accountId;
      const { from, to } = period(c);
      const by = groupBy(c);
      const { groups, total } = await usageSums(c.env.DB, accountId, from * 1000, to * 1000, by);
      return c.json({
        account: accountId,
        from,
        to,
        group_by: by,
        groups: groups.map(({ key, ...sums }) => ({ key, ...accountFigures(sums) })),
        total: accountFigures(total),
      });
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/sessions/:id/usage",
      tag: "Usage",
      summary: "One session's billed segments (ACTIVE, RECONNECTING) and their sums, the open segment up to now included.",
      auth: "bearer",
      responses: { 200: { description: "The session's usage.", schema: SessionUsage } },
      errors: ["SESSION_NOT_FOUND"],
    },
    async (c) => c.json(await oneSessionUsage(c)),
  );
}

async function oneSessionUsage(c: AppContext) {
  const accountId = c.get("principal").accountId;
  const stub = sessionStub(c);
  const sessionId = c.req.param("id")!;
  const [live, written] = await Promise.all([stub.usage(accountId), sessionSegments(c.env.DB, accountId, sessionId)]);
  // The ledger is the record; the object adds segments not written yet (and the open one). After the object's
  // retention has passed, only the ledger knows the session.
  const segments = new Map<number, PricedSegment>(written.map((segment) => [segment.segmentNo, segment]));
  if (live.ok) for (const segment of live.value.segments) if (!segments.has(segment.segmentNo)) segments.set(segment.segmentNo, segment);
  const model = live.ok ? live.value.model : written[0]?.model;
  if (model === undefined) throw new ApiError("SESSION_NOT_FOUND");
  const ordered = [...segments.values()].sort((a, b) => a.segmentNo - b.segmentNo);
  return sessionUsage({ sessionId, model, ...(live.ok && { state: live.value.state }) }, ordered);
}
