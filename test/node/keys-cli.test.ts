/**
 * `npm run keys`: against a local D1 state directory (the default backend) and against a running gateway's admin
 * API (--url); keys it creates must work for POST /tokens, and stop working once revoked.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiKeyRecord } from "../../protocol/api-keys.ts";
import { runScript, type ScriptResult } from "./support/cli.ts";
import { JWT_PATTERN, mintToken, startGateway, type TestGateway } from "../../tools/gateway.ts";

type KeyJson = ApiKeyRecord & { key?: string };

const keys = (...args: string[]) => runScript("keys.ts", args);
const curlTo = (gateway: string) => `curl -X POST ${gateway}/tokens -H "Reactor-API-Key: rk_`;

function expectSuccess(result: ScriptResult): ScriptResult {
  expect(result.code, `exit code; stderr:\n${result.stderr}`).toBe(0);
  return result;
}

const json = <T>(result: ScriptResult): T => JSON.parse(expectSuccess(result).stdout) as T;

let workDir: string;
let stateDir: string;
/** Created, then revoked, in local D1 by the first group of tests. */
let revokedKey: string | undefined;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "keys-cli-"));
  stateDir = path.join(workDir, "state");
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

// Every CLI run starts Node, wrangler and a Miniflare proxy: a few seconds each when idle, far more on a loaded box.
const SLOW = { timeout: 240_000 };

describe("keys CLI on local D1", SLOW, () => {
  let created: KeyJson;

  it("creates a key (applying migrations to a fresh state directory) and prints it once, labelled", async () => {
    const result = expectSuccess(await keys("create", "--account", "acme", "--name", "backend", "--state-dir", stateDir));
    const key = /^\s+(rk_[A-Za-z0-9_-]{43,})$/m.exec(result.stdout)?.[1];
    expect(key, result.stdout).toBeDefined();
    expect(result.stdout).toMatch(/API KEY \(shown only this once/);
    expect(result.stdout).toContain("account acme");
    expect(result.stdout).toContain(curlTo("http://127.0.0.1:8787"));

    created = json<KeyJson>(await keys("create", "--account", "acme", "--state-dir", stateDir, "--json"));
    expect(created).toMatchObject({ account_id: "acme", name: "default", revoked_at: null });
    expect(created.key).toMatch(/^rk_[A-Za-z0-9_-]{43}$/);
    expect(created.key!.startsWith(created.prefix)).toBe(true);
  });

  it("prints the curl for the local gateway's port (PORT, as npm start reads it)", async () => {
    const result = expectSuccess(
      await runScript("keys.ts", ["create", "--account", "acme", "--name", "port", "--state-dir", stateDir], { env: { PORT: "9123" } }),
    );
    expect(result.stdout).toContain(curlTo("http://127.0.0.1:9123"));
  });

  it("lists keys without ever showing them", async () => {
    const listed = json<{ keys: KeyJson[] }>(await keys("list", "--account", "acme", "--state-dir", stateDir, "--json"));
    expect(listed.keys).toHaveLength(3);
    expect(listed.keys.map((key) => key.name).sort()).toEqual(["backend", "default", "port"]);
    for (const key of listed.keys) expect(key).not.toHaveProperty("key");

    const human = expectSuccess(await keys("list", "--state-dir", stateDir));
    expect(human.stdout).toMatch(/^ID\s+ACCOUNT\s+NAME\s+PREFIX\s+CREATED\s+STATUS$/m);
    expect(human.stdout).toContain(created.id);
    expect(human.stdout).not.toContain(created.key);

    const other = expectSuccess(await keys("list", "--account", "nobody", "--state-dir", stateDir));
    expect(other.stdout).toContain("No API keys for account nobody.");
  });

  it("revokes a key once; a second revoke fails with a clear message", async () => {
    const revoked = json<KeyJson>(await keys("revoke", created.id, "--state-dir", stateDir, "--json"));
    expect(revoked.id).toBe(created.id);
    expect(revoked.revoked_at).toEqual(expect.any(Number));

    const again = await keys("revoke", created.id, "--state-dir", stateDir);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`no active API key has id ${created.id}`);

    const listed = expectSuccess(await keys("list", "--account", "acme", "--state-dir", stateDir));
    expect(listed.stdout).toMatch(new RegExp(`${created.id}.*revoked`));
    revokedKey = created.key;
  });

  it("refuses bad usage with exit code 2 and a pointer to --help", async () => {
    for (const args of [["create"], ["frobnicate"], ["list", "--alg", "ES256"], ["signing-key", "--alg", "RS256"], []]) {
      const result = await keys(...args);
      expect(result.code, args.join(" ")).toBe(2);
    }
    const missingAccount = await keys("create");
    expect(missingAccount.stderr).toContain("create needs --account");
    expect(missingAccount.stderr).toContain("--help");
    const noToken = await keys("list", "--url", "http://127.0.0.1:9");
    expect(noToken.stderr).toContain("ADMIN_TOKEN");
  });

  it("prints new signing keys for JWT_SIGNING_KEYS with rotation steps", async () => {
    for (const [alg, kty] of [
      ["ES256", "EC"],
      ["EdDSA", "OKP"],
    ] as const) {
      const jwk = json<Record<string, string>>(await keys("signing-key", "--alg", alg, "--json"));
      expect(jwk).toMatchObject({ alg, kty, kid: expect.any(String), d: expect.any(String) });
    }
    const human = expectSuccess(await keys("signing-key"));
    expect(human.stdout).toContain("wrangler secret put JWT_SIGNING_KEYS");
    expect(human.stdout).toMatch(/Rotation/);
  });
});

describe("keys created by the CLI on a gateway", SLOW, () => {
  let gateway: TestGateway;
  let localKey: string;

  beforeAll(async () => {
    // A key created in local D1 before the gateway starts on the same state directory.
    localKey = json<KeyJson>(await keys("create", "--account", "local", "--state-dir", stateDir, "--json")).key!;
    gateway = await startGateway({ stateDir });
  }, 240_000);

  afterAll(async () => {
    await gateway?.stop();
  });

  it("a key created in local D1 mints a client token", async () => {
    const { status, body } = await mintToken(gateway.url, localKey);
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.jwt).toMatch(JWT_PATTERN);
  });

  it("local D1 changes reach the running gateway at once", async () => {
    const created = json<KeyJson>(await keys("create", "--account", "live", "--state-dir", stateDir, "--json"));
    expect((await mintToken(gateway.url, created.key!)).status).toBe(200);
    expectSuccess(await keys("revoke", created.id, "--state-dir", stateDir));
    const refused = await mintToken(gateway.url, created.key!);
    expect(refused.status).toBe(401);
    expect(refused.body.error?.code).toBe("API_KEY_INVALID");
  });

  it("a key revoked in local D1 is refused", async () => {
    expect(revokedKey, "the local revoke test ran first").toBeDefined();
    const { status, body } = await mintToken(gateway.url, revokedKey!);
    expect(status).toBe(401);
    expect(body.error?.code).toBe("API_KEY_INVALID");
  });

  it("create → list → revoke through the admin API (--url), with the key refused after revocation", async () => {
    const remote = ["--url", gateway.url, "--admin-token", gateway.adminToken];
    const created = json<KeyJson>(await keys("create", "--account", "remote", "--name", "ci", ...remote, "--json"));
    expect(created).toMatchObject({ account_id: "remote", name: "ci" });
    // Told in human form, the curl goes to the gateway the key was made on.
    expect(expectSuccess(await keys("create", "--account", "remote-human", ...remote)).stdout).toContain(curlTo(gateway.url));

    const minted = await mintToken(gateway.url, created.key!);
    expect(minted.status).toBe(200);
    expect(minted.body.jwt).toMatch(JWT_PATTERN);

    const listed = json<{ keys: KeyJson[] }>(await keys("list", "--account", "remote", ...remote, "--json"));
    expect(listed.keys.map((key) => key.id)).toEqual([created.id]);
    expect(listed.keys[0]).not.toHaveProperty("key");

    expectSuccess(await keys("revoke", created.id, ...remote));
    const refused = await mintToken(gateway.url, created.key!);
    expect(refused.status).toBe(401);
    expect(refused.body.error?.code).toBe("API_KEY_INVALID");

    const again = await keys("revoke", created.id, ...remote);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("no active API key");
  });

  it("reports a wrong admin token with the gateway's error code", async () => {
    const result = await keys("list", "--url", gateway.url, "--admin-token", "wrong");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("ADMIN_UNAUTHORIZED");
  });
});
