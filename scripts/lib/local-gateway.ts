/** Asking a local gateway (`npm start`) for what a script needs: a dev token and the models its runtimes serve. */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function failure(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (error?.code) return `HTTP ${response.status} ${error.code}: ${error.message ?? ""}`;
  } catch {
    // not the gateway's error shape: show the text
  }
  return `HTTP ${response.status} ${text.slice(0, 200)}`;
}

/** POST /dev/token: a client JWT for account dev (the gateway must have DEV_API_KEY and be on loopback). */
export async function devToken(url: string): Promise<string> {
  const response = await fetch(`${url}/dev/token`, { method: "POST", signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) throw new Error(`POST /dev/token failed: ${await failure(response)}`);
  return ((await response.json()) as { jwt: string }).jwt;
}

/** GET /v1/models: the names of the models that have a connected runtime. */
export async function modelNames(url: string, jwt: string): Promise<string[]> {
  const response = await fetch(`${url}/v1/models`, { headers: { Authorization: `Bearer ${jwt}` }, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) throw new Error(`GET /v1/models failed: ${await failure(response)}`);
  return ((await response.json()) as { models: { name: string }[] }).models.map((model) => model.name);
}

/**
 * Polls GET /v1/models until `model` is listed. Failed calls are retried (`wrangler dev` answers oddly for a moment
 * while it reloads the Worker after a file changed). Fails after `timeoutMs` with the last problem seen, or as soon
 * as `gaveUp` settles (for example when the runtime agent's process exits).
 */
export async function waitForModel(
  url: string,
  model: string,
  { timeoutMs = 120_000, gaveUp }: { timeoutMs?: number; gaveUp?: Promise<unknown> } = {},
): Promise<void> {
  let ended = false;
  void gaveUp?.finally(() => (ended = true));
  const deadline = Date.now() + timeoutMs;
  let jwt: string | undefined;
  let last = "not listed yet";
  while (!ended) {
    try {
      jwt ??= await devToken(url);
      if ((await modelNames(url, jwt)).includes(model)) return;
      last = "not listed yet";
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`model ${model} was not listed by ${url}/v1/models after ${timeoutMs / 1000} s (${last})`);
    await sleep(250);
  }
  throw new Error(`the runtime agent exited before model ${model} was listed (${last})`);
}
