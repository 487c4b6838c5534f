/** GET /v1/models: the directory's names, each confirmed and described by its own pool. */
import { modelPool, type PoolSnapshot } from "../objects.ts";
import type { ModelSummary } from "../../protocol/http.ts";
import { listedModels } from "./directory.ts";

/** The models with a connected runtime that `allowed` (a token's narrowing; null = every model) may use. */
export async function availableModels(env: Env, allowed: string[] | null): Promise<ModelSummary[]> {
  const names = (await listedModels(env.DB)).filter((name) => allowed === null || allowed.includes(name));
  // One pool per model, asked in parallel; a pool that fails to answer is left out rather than failing the list.
  const answers = await Promise.allSettled(names.map((name) => modelPool(env, name).snapshot()));
  return answers.flatMap((answer, index) => {
    if (answer.status === "fulfilled") return summarize(names[index]!, answer.value) ?? [];
    console.error(`models: pool ${names[index]} did not answer:`, answer.reason instanceof Error ? answer.reason.message : String(answer.reason));
    return [];
  });
}

/** A pool's snapshot as a listing entry; null when no runtime is connected (its directory row is stale). */
export function summarize(name: string, snapshot: PoolSnapshot): ModelSummary | null {
  const connected = snapshot.runtimes.filter((runtime) => runtime.connected);
  if (connected.length === 0 || snapshot.capabilities === null) return null;
  const version = connected.find((runtime) => runtime.model_version !== null)?.model_version;
  return {
    name,
    ...(version && { version }),
    capabilities: snapshot.capabilities,
    runtimes: connected.length,
    slots: { total: connected.reduce((sum, runtime) => sum + runtime.slots, 0), free: snapshot.free_slots },
    queue_length: snapshot.queue_length,
  };
}
