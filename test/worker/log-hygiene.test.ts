/**
 * What the gateway logs, and what it must never log (SECURITY.md, "Logging"): every failure path that writes a log
 * line is driven here with requests that carry every kind of credential, and no line may contain any of them.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app.ts";
import { call, mintToken, newApiKey } from "./helpers.ts";
import { freshAccount } from "./limits-helpers.ts";
import {
  activeNativeSession,
  advanceClock,
  createSession,
  freshModel,
  RUNTIME_TOKEN,
  ScriptedRuntime,
  sessionStub,
  type ClientAccount,
} from "./scripted.ts";
import { failingBucket, failWrites } from "./faults.ts";
import { createUpload, pattern, PNG } from "./upload-helpers.ts";

const lines: string[] = [];
let client: ClientAccount;
let apiKey: string;

beforeAll(async () => {
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, method).mockImplementation(
      (...args: unknown[]) => void lines.push(args.map((arg) => (arg instanceof Error ? `${arg.message} ${arg.stack}` : String(arg))).join(" ")),
    );
  }
  const account = freshAccount("logs");
  const key = await newApiKey(account);
  apiKey = key.key;
  client = { account, jwt: (await mintToken(key.key)).jwt };
});

afterAll(() => vi.restoreAllMocks());

describe("logs never carry credentials", () => {
  it("through every failure path that logs: an unhandled error, a failed ledger write, a failed R2 write, refused credentials", async () => {
    const signature = { value: "" };
    // 1. An unhandled error (D1 failing under an admin request that carries the admin token): "unhandled error" + stack.
    const account = freshAccount("logs");
    const restoreKeys = await failWrites("api_keys", `NEW.account_id = '${account}'`);
    try {
      const refused = await call("/admin/keys", {
        method: "POST",
        headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}`, "Content-Type": "application/json", "Reactor-API-Key": apiKey },
        body: JSON.stringify({ account }),
      });
      expect(refused.status).toBe(500);
    } finally {
      await restoreKeys();
    }

    // 2. A failed ledger write, retried by alarm: "ledger write failed" with the session id.
    const model = freshModel("logs");
    const runtime = await new ScriptedRuntime(model, "gpu-logs", 1).connect();
    const { sessionId, signal } = await activeNativeSession(model, runtime, client);
    const restoreLedger = await failWrites("usage_segments", `NEW.session_id = '${sessionId}'`);
    try {
      await advanceClock(sessionStub(sessionId), 5000);
      signal.send({ type: "close" });
      await signal.waitClosed();
      await runDurableObjectAlarm(sessionStub(sessionId));
    } finally {
      await restoreLedger();
    }

    // 3. A failed R2 write of an upload (its presigned URL carries a signature): "upload storage failed".
    const { session_id: uploading } = await createSession(client, freshModel("logs"));
    const upload = await createUpload(client, uploading, { size: 10 });
    signature.value = new URL(upload.presigned_url).searchParams.get("signature")!;
    const stored = await createApp().request(
      upload.presigned_url,
      { method: "PUT", body: pattern(10), headers: { "Content-Type": PNG, "Content-Length": "10" } },
      {
        ...env,
        UPLOADS: failingBucket(env.UPLOADS),
      },
    );
    expect(stored.status).toBe(502);

    // 4. Credentials refused everywhere (none of this logs, and if it ever did, it must not carry them).
    await call("/v1/whoami", { headers: { Authorization: `Bearer ${client.jwt}x` } });
    await call("/v1/runtime/connect?model=x", { headers: { Upgrade: "websocket", Authorization: `Bearer ${RUNTIME_TOKEN}0` } });
    await call("/sessions", { method: "POST", headers: { Authorization: `Bearer ${RUNTIME_TOKEN}` }, body: "{}" });

    const logged = lines.join("\n");
    expect(logged).toContain("unhandled error"); // the paths above did log…
    expect(logged).toContain("ledger write failed");
    expect(logged).toContain("upload storage failed");
    const secrets = {
      "client token": client.jwt,
      "client token's signature": client.jwt.split(".")[2]!,
      "API key": apiKey,
      "admin token": env.ADMIN_TOKEN!,
      "runtime token": RUNTIME_TOKEN,
      "TURN secret": env.TURN_SECRET!,
      "upload signing secret": env.UPLOAD_SIGNING_SECRET!,
      "upload URL signature": signature.value,
      "JWT signing key": (JSON.parse(env.JWT_SIGNING_KEYS) as { keys: { d: string }[] }).keys[0]!.d,
    };
    for (const [name, secret] of Object.entries(secrets)) expect(logged.includes(secret), `${name} in the logs`).toBe(false);
  });
});
