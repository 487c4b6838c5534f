/** Ways to make D1 and R2 fail for real on a write path, and to hold back an object's answer, for fault-injection tests. */
import { env } from "cloudflare:workers";
import type { ModelPool } from "../../durable-objects/pool/model-pool.ts";

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

/**
 * A MODEL_POOL binding (to swap into one session object's env) whose `enqueue` runs on the real pool, which does all
 * its work (a slot reserved, its runtime told on the control socket), but whose answer is held back from the session
 * until `release()`: the order a slow network or a busy pool can produce. Everything else goes to the pool unchanged.
 */
export function holdEnqueueAnswers(pools: Env["MODEL_POOL"]): { binding: Env["MODEL_POOL"]; release: () => void; answered: () => boolean } {
  let released = false;
  let answered = false;
  const passOn = <T extends object>(target: T, property: string | symbol) => {
    const value = Reflect.get(target, property) as unknown;
    return typeof value === "function" ? value.bind(target) : value;
  };
  const holding = (stub: DurableObjectStub<ModelPool>) =>
    new Proxy(stub, {
      get(target, property) {
        if (property !== "enqueue") return passOn(target, property);
        return async (sessionId: string) => {
          const answer = await target.enqueue(sessionId);
          // A flag polled here rather than a promise resolved from the test: the test runs in another request.
          while (!released) await scheduler.wait(10);
          answered = true;
          return answer;
        };
      },
    });
  const binding = new Proxy(pools, {
    get(target, property) {
      if (property === "getByName") return (name: string) => holding(target.getByName(name));
      return passOn(target, property);
    },
  });
  const release = () => {
    released = true;
  };
  return { binding, release, answered: () => answered };
}
