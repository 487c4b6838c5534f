/**
 * File uploads end to end (docs/uploads.md): a real gateway (`wrangler dev`, local R2), the runtime agent serving
 * the demo model, and both clients — the official client 2.9.0 and the native SDK in Chromium, the native SDK in
 * Node (werift). A real PNG goes up through the presigned PUT (cross-origin from the test pages), `set_image` with
 * its FileRef reaches the model, and the model's byte count and SHA-256 equal the file's. File references that do
 * not check out are refused with the gateway's codes: by the runtime for the official client (whose commands go
 * over the data channel), by the gateway for the native SDK.
 */
import type { Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RTCPeerConnection as WeriftPeerConnection } from "werift";
import { clientToken, startGateway, type TestGateway } from "../../tools/gateway.ts";
import { registerModel } from "../../tools/peers.ts";
import { RuntimeAgent } from "../../runtime/agent.ts";
import { demoModel } from "../../runtime/demo/model.ts";
import { Client, FileRef, type ReactorError, type RTCPeerConnectionConstructor, type UploadProgress } from "../../sdk/src/index.ts";
import { launchBrowser, servePage, type ServedPage, type TestBrowser } from "../../tools/browser.ts";
import { reactorClientPage, type HarnessWindow } from "../../tools/browser.test-page.ts";
import { pngImage, sha256 } from "./support/images.ts";
import { sdkHarness, sdkPage } from "../../tools/sdk-page.ts";

const WAIT = { timeout: 45_000, interval: 100 };

/** A real 320×240 PNG, and a large one (random pixels do not compress: ≈ 24 MiB) for progress events. */
const IMAGE = pngImage(320, 240);
const LARGE = pngImage(2900, 2900, { noise: true });
const FILES = { "/image.png": { body: IMAGE, type: "image/png" }, "/large.png": { body: LARGE, type: "image/png" } };

let gateway: TestGateway;
let browser: TestBrowser;
let officialSite: ServedPage;
let sdkSite: ServedPage;
let agent: RuntimeAgent;
let jwt: string;
const pages: Page[] = [];

beforeAll(async () => {
  [gateway, browser, officialSite, sdkSite] = await Promise.all([
    startGateway({ vars: { STUN_URLS: "" } }),
    launchBrowser(),
    reactorClientPage().then((files) => servePage({ ...files, ...FILES })),
    sdkPage().then((files) => servePage({ ...files, ...FILES })),
  ]);
  agent = new RuntimeAgent({ gatewayUrl: gateway.url, token: gateway.runtimeToken, model: demoModel(), slots: 2, log: () => undefined });
  await agent.start();
  jwt = await clientToken(gateway);
});

afterAll(async () => {
  await agent?.stop();
  await Promise.all([browser?.close(), officialSite?.close(), sdkSite?.close(), gateway?.stop()]);
});

afterEach(async () => {
  for (const page of pages.splice(0)) await page.close();
});

/** Fails with the browser's console output, which is where a page's problems show. */
async function withLogs<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    (error as Error).message += `\n--- browser console ---\n${browser.logs().slice(-40).join("\n")}`;
    throw error;
  }
}

/** A session on a model nobody serves (it waits), with one complete upload: a file of *another* session. */
async function foreignUpload(): Promise<{ sessionId: string; uploadId: string; size: number }> {
  const headers = { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" };
  await registerModel(gateway, "nobody-serves-this"); // known, with no runtime connected: the session waits
  const created = await fetch(`${gateway.url}/sessions`, {
    method: "POST",
    headers,
    body: JSON.stringify({ model: { name: "nobody-serves-this" } }),
  });
  const { session_id: sessionId } = (await created.json()) as { session_id: string };
  const slot = await fetch(`${gateway.url}/sessions/${sessionId}/uploads`, {
    method: "POST",
    headers,
    body: JSON.stringify({ name: "photo.png", size: IMAGE.length, mime_type: "image/png" }),
  });
  const { presigned_id: uploadId, presigned_url: url } = (await slot.json()) as { presigned_id: string; presigned_url: string };
  const stored = await fetch(url, { method: "PUT", body: IMAGE, headers: { "Content-Type": "image/png" } });
  expect(stored.status).toBe(200);
  return { sessionId, uploadId, size: IMAGE.length };
}

const IMAGE_REPLY = { type: "command_result", command: "set_image", ok: true, bytes: IMAGE.length, sha256: sha256(IMAGE) };

describe("the official client 2.9.0 in Chromium", () => {
  it("uploads a PNG, sends set_image with its FileRef, and the model answers the file's byte count and SHA-256", () =>
    withLogs(async () => {
      const page = await browser.newPage();
      pages.push(page);
      await page.goto(officialSite.url);
      await page.evaluate(([apiUrl, token]) => void (window as unknown as HarnessWindow).harness.connect({ apiUrl, jwt: token, modelName: "demo" }), [
        gateway.url,
        jwt,
      ] as const);
      await expect.poll(() => page.evaluate(() => (window as unknown as HarnessWindow).harness.state().status), WAIT).toBe("ready");
      // A real image: the browser decodes it.
      expect(await page.evaluate(async () => (await createImageBitmap(await (await fetch("/image.png")).blob())).width)).toBe(320);

      const uploaded = await page.evaluate(() => (window as unknown as HarnessWindow).harness.uploadFile("/image.png", "photo.png", "image/png"));
      expect(uploaded).toEqual({
        index: 0,
        ref: { uploadId: expect.stringMatching(/^upl_/), name: "photo.png", mimeType: "image/png", size: IMAGE.length },
      });
      const { uploadId } = (uploaded as { ref: { uploadId: string } }).ref;
      const messages = () => page.evaluate(() => (window as unknown as HarnessWindow).harness.state().messages);
      // The client's fileUploaded notice reached the model once the runtime had checked it with the gateway.
      await expect
        .poll(messages, WAIT)
        .toContainEqual({ type: "file_uploaded", upload_id: uploadId, name: "photo.png", mime_type: "image/png", size: IMAGE.length });

      await page.evaluate(() => (window as unknown as HarnessWindow).harness.sendWithFile("set_image", "image", 0));
      await expect.poll(messages, WAIT).toContainEqual(IMAGE_REPLY);
      expect((await page.evaluate(() => (window as unknown as HarnessWindow).harness.state())).errors).toEqual([]);
      await page.evaluate(() => (window as unknown as HarnessWindow).harness.disconnect(false));
    }));

  it("gets the gateway's code when a FileRef does not check out: another session's upload, an unknown id, wrong facts", () =>
    withLogs(async () => {
      const foreign = await foreignUpload();
      const page = await browser.newPage();
      pages.push(page);
      await page.goto(officialSite.url);
      const call = <T>(work: () => T) => page.evaluate(work);
      await page.evaluate(([apiUrl, token]) => void (window as unknown as HarnessWindow).harness.connect({ apiUrl, jwt: token, modelName: "demo" }), [
        gateway.url,
        jwt,
      ] as const);
      await expect.poll(() => call(() => (window as unknown as HarnessWindow).harness.state().status), WAIT).toBe("ready");
      const own = (await call(() => (window as unknown as HarnessWindow).harness.uploadFile("/image.png", "photo.png", "image/png"))) as {
        ref: { uploadId: string };
      };

      const forged: [fields: { uploadId: string; name: string; mimeType: string; size: number }, code: string][] = [
        [{ uploadId: foreign.uploadId, name: "photo.png", mimeType: "image/png", size: foreign.size }, "UPLOAD_NOT_FOUND"],
        [{ uploadId: "upl_AAAAAAAAAAAAAAAAAAAAAA", name: "photo.png", mimeType: "image/png", size: 10 }, "UPLOAD_NOT_FOUND"],
        [{ uploadId: "../../admin/keys", name: "photo.png", mimeType: "image/png", size: 10 }, "UPLOAD_NOT_FOUND"],
        [{ uploadId: own.ref.uploadId, name: "photo.png", mimeType: "image/png", size: IMAGE.length + 1 }, "UPLOAD_REF_MISMATCH"],
        [{ uploadId: own.ref.uploadId, name: "other.png", mimeType: "image/png", size: IMAGE.length }, "UPLOAD_REF_MISMATCH"],
      ];
      for (const [fields, code] of forged) {
        await page.evaluate((f) => {
          const harness = (window as unknown as HarnessWindow).harness;
          harness.sendWithFile("set_image", "image", harness.forgeFileRef(f));
        }, fields);
        await expect
          .poll(() => call(() => (window as unknown as HarnessWindow).harness.state().messages), WAIT)
          .toContainEqual({ type: "command_error", command: "set_image", code, message: expect.stringContaining("uploads.image") });
      }
      // A forged fileUploaded notice is refused the same way, on the runtime scope.
      await page.evaluate(
        (id) =>
          (window as unknown as HarnessWindow).harness.sendCommand(
            "fileUploaded",
            { upload_id: id, name: "photo.png", mime_type: "image/png", size: 10 },
            "runtime",
          ),
        foreign.uploadId,
      );
      await expect
        .poll(() => call(() => (window as unknown as HarnessWindow).harness.state().runtimeMessages), WAIT)
        .toContainEqual(expect.objectContaining({ type: "command_error", command: "fileUploaded", code: "UPLOAD_NOT_FOUND" }));
      // None of the forged references reached the model: its only set_image reply would carry a digest.
      const state = await call(() => (window as unknown as HarnessWindow).harness.state());
      expect(state.messages.filter((m) => (m as { type?: string }).type === "command_result")).toEqual([]);
      await page.evaluate(() => (window as unknown as HarnessWindow).harness.disconnect(false));
    }));
});

describe("the native SDK", () => {
  it("in Chromium: uploads a large file with progress events (XHR), and set_image gets its byte count and SHA-256", () =>
    withLogs(async () => {
      const page = await browser.newPage();
      pages.push(page);
      await page.goto(sdkSite.url);
      const sdk = sdkHarness(page);
      await sdk.create({ apiUrl: gateway.url, modelName: "demo" });
      await sdk.connect(jwt);
      await expect.poll(async () => (await sdk.state()).status, WAIT).toBe("ready");

      const index = await sdk.upload("/large.png", "large.png", "image/png");
      const upload = (await sdk.state()).uploads[index]!;
      expect(upload.error).toBeUndefined();
      expect(upload.ref).toEqual({ uploadId: expect.stringMatching(/^upl_/), name: "large.png", mimeType: "image/png", size: LARGE.length });
      // Progress: increasing, some of it before the end, and the total only once stored.
      const loaded = upload.progress.map(([bytes]) => bytes);
      expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
      expect(loaded.some((bytes) => bytes > 0 && bytes < LARGE.length)).toBe(true);
      expect(upload.progress.at(-1)).toEqual([LARGE.length, LARGE.length]);
      expect(loaded.filter((bytes) => bytes === LARGE.length)).toHaveLength(1);

      const command = await sdk.sendFile("set_image", "image", index);
      await expect.poll(async () => (await sdk.state()).commands[command]?.done, WAIT).toBe("acknowledged");
      await expect
        .poll(async () => (await sdk.state()).messages.map((message) => message.data), WAIT)
        .toContainEqual({ type: "command_result", command: "set_image", ok: true, bytes: LARGE.length, sha256: sha256(LARGE) });
      expect((await sdk.state()).errors).toEqual([]);
      await sdk.disconnect();
    }));

  it("in Node (werift): uploads with fetch and progress, set_image works, and the gateway refuses what does not check out", async () => {
    const client = new Client({
      apiUrl: gateway.url,
      modelName: "demo",
      RTCPeerConnection: WeriftPeerConnection as unknown as RTCPeerConnectionConstructor,
    });
    const messages: unknown[] = [];
    const errors: ReactorError[] = [];
    client.on("message", (data) => messages.push(data));
    client.on("error", (error) => errors.push(error));
    await client.connect(jwt);
    try {
      await expect.poll(() => client.getStatus(), WAIT).toBe("ready");
      const file = pngImage(700, 700, { noise: true }); // ≈ 1.4 MiB: several 64 KiB progress steps
      const progress: UploadProgress[] = [];
      const ref = await client.uploadFile(new Blob([file], { type: "image/png" }), { name: "node.png", onProgress: (p) => progress.push(p) });
      expect(ref).toBeInstanceOf(FileRef);
      expect(ref).toMatchObject({ uploadId: expect.stringMatching(/^upl_/), name: "node.png", mimeType: "image/png", size: file.length });
      expect(progress.length).toBeGreaterThan(3);
      expect(progress.at(-1)).toEqual({ loaded: file.length, total: file.length });
      expect(progress.slice(0, -1).every(({ loaded }) => loaded > 0 && loaded < file.length)).toBe(true);

      const sent = client.sendCommand("set_image", { image: ref });
      expect(await sent.done).toBe("acknowledged");
      await expect
        .poll(() => messages, WAIT)
        .toContainEqual({ type: "command_result", command: "set_image", ok: true, bytes: file.length, sha256: sha256(file) });

      // Another session's file, and facts that differ from the upload's: refused by the gateway, never relayed.
      const foreign = await foreignUpload();
      const refused = client.sendCommand("set_image", { image: new FileRef(foreign.uploadId, "photo.png", "image/png", foreign.size) });
      expect(await refused.done).toBe("dropped");
      expect(refused.error).toBe("UPLOAD_NOT_FOUND");
      const mismatched = client.sendCommand("set_image", { image: new FileRef(ref.uploadId, ref.name, ref.mimeType, ref.size - 1) });
      expect(await mismatched.done).toBe("dropped");
      expect(mismatched.error).toBe("UPLOAD_REF_MISMATCH");
      await expect.poll(() => errors.map((error) => error.code), WAIT).toEqual(["UPLOAD_NOT_FOUND", "UPLOAD_REF_MISMATCH"]);
      // A command the model declares with a file, sent without one: the agent refuses it.
      client.sendCommand("set_image", {});
      await expect
        .poll(() => messages, WAIT)
        .toContainEqual(expect.objectContaining({ type: "command_error", command: "set_image", code: "INVALID_COMMAND" }));

      // The upload itself refused, with the gateway's codes.
      await expect(client.uploadFile(new Blob(["<p>hi</p>"], { type: "text/html" }))).rejects.toMatchObject({ code: "UPLOAD_TYPE_NOT_ALLOWED" });
      await expect(client.uploadFile(new Blob([], { type: "image/png" }))).rejects.toMatchObject({ code: "UPLOAD_EMPTY" });
      await expect(client.uploadFile(new Blob([file], { type: "image/png" }), { name: "../../etc/passwd" })).rejects.toMatchObject({
        code: "UPLOAD_NAME_INVALID",
      });
      expect(messages.filter((m) => (m as { command?: string }).command === "set_image" && (m as { ok?: boolean }).ok)).toHaveLength(1);
    } finally {
      await client.disconnect();
    }
  });
});
