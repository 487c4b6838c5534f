/**
 * `__proto__` (and `constructor`, `prototype`) as a key of a record: a session's `extra_args` over REST, a command's
 * `uploads` over the native socket. JSON.parse makes `"__proto__"` an ordinary key, but copying it into a new object
 * would set that object's prototype instead: the key would vanish from every check that walks the record, so a
 * bogus FileRef under it skipped its upload check. The schema toolkit refuses those keys (FORBIDDEN_KEY).
 */
import { describe, expect, it } from "vitest";
import { FORBIDDEN_KEYS, json, parse, record } from "../../protocol/schema.ts";
import { call } from "./helpers.ts";
import { accountStore } from "./invariants.ts";
import { clientOf, freshAccount } from "./limits-helpers.ts";
import { activeNativeSession, clientHeaders, command, commandSeqs, freshModel, registerModel, ScriptedRuntime, type Frame } from "./scripted.ts";

const KEYS = [...FORBIDDEN_KEYS];

describe("the schema toolkit's records", () => {
  it.each(KEYS)("refuse the key %s with code FORBIDDEN_KEY and its path; other keys pass", (key) => {
    const result = parse(record(json()), JSON.parse(`{"ok": 1, "${key}": {"polluted": true}}`));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatchObject({ code: "FORBIDDEN_KEY", path: `$.${key}` });
    expect(parse(record(json()), JSON.parse('{"proto": 1, "__proto": 2, "Constructor": 3}'))).toEqual({
      ok: true,
      value: { proto: 1, __proto: 2, Constructor: 3 },
    });
  });
});

describe("POST /sessions with such a key in extra_args", () => {
  it.each(KEYS)("%s: 400 FORBIDDEN_KEY naming the field; no session, no slot", async (key) => {
    const client = await clientOf(freshAccount("proto"));
    const model = freshModel("proto");
    await registerModel(model);
    const response = await call("/sessions", {
      method: "POST",
      headers: clientHeaders(client),
      body: `{"model": {"name": "${model}"}, "extra_args": {"${key}": {"seed": 1}}}`,
    });
    expect(response.status).toBe(400);
    expect((await response.json()) as unknown).toMatchObject({
      error: { code: "FORBIDDEN_KEY", message: expect.stringContaining(`$.extra_args.${key}`), recoverable: false },
    });
    expect(await accountStore(client.account)).toMatchObject({ slots: [], creations: 0 });
  });
});

describe("a native command with such a key in its uploads section", () => {
  it("is refused FORBIDDEN_KEY and never relayed: the bogus FileRef cannot skip its check", async () => {
    const model = freshModel("proto-socket");
    const runtime = await new ScriptedRuntime(model, "gpu-proto", 1).connect();
    const { signal, runtimePeer } = await activeNativeSession(model, runtime);
    await signal.sync();
    const bogus = '{"upload_id": "upl_AAAAAAAAAAAAAAAAAAAAAA", "name": "x.png", "mime_type": "image/png", "size": 50}';
    for (const key of KEYS) {
      signal.send(`{"type": "command", "seq": 1, "command": {"type": "set_image", "data": {}, "uploads": {"${key}": ${bogus}}}}`);
      expect(await signal.next("error")).toMatchObject({ code: "FORBIDDEN_KEY", message: expect.stringContaining(`uploads.${key}`) });
    }
    // Nothing was relayed, and no seq was used: the next command, seq 1, is the first the runtime sees.
    signal.send(command(1));
    const seen: Frame[] = await runtimePeer.takeUntil((frame) => frame.type === "command");
    expect(commandSeqs(seen)).toEqual([1]);
    expect(seen.find((frame) => frame.type === "command")).not.toHaveProperty("command.uploads");
  });
});
