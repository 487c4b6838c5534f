/** Ways to make D1 and R2 fail for real on a write path, for fault-injection tests. */
import { env } from "cloudflare:workers";

/**
 * Makes D1 refuse writes to `table` for rows matching `when` (SQL over NEW), with a trigger: D1 itself fails the
 * write, as it would on an outage or a constraint, and only the test's own rows are touched (other test files share
 * the database). Returns the undo.
 */
export async function failWrites(table: string, when: string, operation: "INSERT" | "UPDATE" = "INSERT"): Promise<() => Promise<void>> {
  const name = `fault_${crypto.randomUUID().replaceAll("-", "")}`;
  await env.DB.exec(`CREATE TRIGGER ${name} BEFORE ${operation} ON ${table} WHEN ${when} BEGIN SELECT RAISE(ABORT, 'injected fault'); END;`);
  return async () => void (await env.DB.exec(`DROP TRIGGER IF EXISTS ${name};`));
}

/** An R2 bucket whose writes (put, delete) fail the way R2 fails them: the promise rejects. Reads go to `bucket`. */
export function failingBucket(bucket: R2Bucket): R2Bucket {
  return new Proxy(bucket, {
    get(target, property) {
      if (property === "put" || property === "delete") {
        return (...args: unknown[]) => {
          // A put's body must still be consumed or cancelled, as a failing R2 would: the writer feeding it waits.
          const body = args[1];
          if (body instanceof ReadableStream) void body.cancel().catch(() => undefined);
          return Promise.reject(new Error("R2: injected fault (503 Service Unavailable)"));
        };
      }
      const value = Reflect.get(target, property) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
