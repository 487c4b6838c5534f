/** The model picker's data: `GET /v1/models` (models with a registered runtime), polled while the page is open. */
import { ModelsResponse, type ModelSummary } from "../../protocol/http.ts";
import { err, ok, type Result } from "../../protocol/result.ts";
import { parse } from "../../protocol/schema.ts";
import { errorCode } from "./token.ts";

export type { ModelSummary };

export const DEFAULT_MODEL = "demo";
const POLL_INTERVAL_MS = 3_000;

/** The models, or why they are unknown (for the page to show). */
export type ModelsResult = Result<ModelSummary[], string>;

export async function fetchModels(gatewayUrl: string, jwt: string): Promise<ModelsResult> {
  let response: Response;
  try {
    response = await fetch(`${gatewayUrl}/v1/models`, { headers: { Authorization: `Bearer ${jwt}` } });
  } catch (error) {
    return err(`the gateway did not answer (${(error as Error).message})`);
  }
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) return err(`GET /v1/models answered ${response.status}${errorCode(body)}`);
  const parsed = parse(ModelsResponse, body);
  if (!parsed.ok) return err(`GET /v1/models answered with an unexpected body (${parsed.error.message})`);
  return ok(parsed.value.models);
}

/** Calls `fetch` now and every few seconds, handing each result to `onResult`; returns a function that stops it. */
export function watchModels(fetch: () => Promise<ModelsResult>, onResult: (result: ModelsResult) => void): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const poll = async () => {
    const result = await fetch().catch((error: unknown): ModelsResult => err(error instanceof Error ? error.message : String(error)));
    if (stopped) return;
    onResult(result);
    timer = setTimeout(() => void poll(), POLL_INTERVAL_MS);
  };
  void poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** One line of the picker: `demo — 1/2 free, queue 0`. */
export function describeModel(model: ModelSummary): string {
  return `${model.name} — ${model.slots.free}/${model.slots.total} free, queue ${model.queue_length}`;
}
