/**
 * Headless Chromium for end-to-end tests (playwright-core driving the system's Debian `chromium`, no downloaded
 * browser), and a loopback HTTP server for the pages it loads.
 *
 *   const browser = await launchBrowser();
 *   const site = await servePage({ "/": html, "/sdk.js": { body: bundle, type: "text/javascript" } });
 *   const page = await browser.newPage();
 *   await page.goto(site.url);
 *   ...
 *   await browser.close(); await site.close();   // in afterAll / finally
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from "playwright-core";

/** Debian's launcher script; it sources /etc/chromium.d and execs /usr/lib/chromium/chromium. */
export const DEFAULT_CHROMIUM = "/usr/bin/chromium";

/**
 * Flags for a quiet, hermetic headless Chromium. Playwright adds most of these itself (and `--remote-debugging-pipe`,
 * `--user-data-dir`); they are repeated so the list is the whole truth even if Playwright's defaults change.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
  // A <video> playing a remote WebRTC stream must start without a user gesture.
  "--autoplay-policy=no-user-gesture-required",
];

export interface LaunchBrowserOptions {
  /** Default: $CHROMIUM_PATH, else /usr/bin/chromium. */
  executablePath?: string;
  /**
   * Appended to CHROMIUM_ARGS. Careful with `--disable-features=` / `--enable-features=`: Playwright passes its own
   * lists of those, and Chromium keeps only one value per switch.
   */
  args?: string[];
  /** Where the temporary user data directory is made (default the OS temp directory). */
  workRoot?: string;
  /** Launch timeout (default 60 s). */
  timeoutMs?: number;
}

export interface TestBrowser {
  context: BrowserContext;
  /** The fresh profile; removed by close(). */
  userDataDir: string;
  /** A new tab; its console output and page errors are kept for `logs()`. */
  newPage(): Promise<Page>;
  /** Console lines (`[type] text`) and uncaught page errors of every page opened with newPage(), oldest first. */
  logs(): string[];
  /** Closes Chromium (all its processes) and removes the profile. Idempotent. */
  close(): Promise<void>;
}

export async function launchBrowser(options: LaunchBrowserOptions = {}): Promise<TestBrowser> {
  const executablePath = options.executablePath ?? process.env.CHROMIUM_PATH ?? DEFAULT_CHROMIUM;
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`);
  }
  const userDataDir = await mkdtemp(path.join(options.workRoot ?? tmpdir(), "test-chromium-"));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
      timeout: options.timeoutMs ?? 60_000,
    });
  } catch (error) {
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
  const lines: string[] = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > 500) lines.shift();
  };
  let closing: Promise<void> | undefined;
  return {
    context,
    userDataDir,
    async newPage() {
      const page = await context.newPage();
      page.on("console", (message: ConsoleMessage) => keep(`[${message.type()}] ${message.text()}`));
      page.on("pageerror", (error: Error) => keep(`[pageerror] ${error.stack ?? error.message}`));
      return page;
    },
    logs: () => [...lines],
    close() {
      closing ??= (async () => {
        await context.close().catch(() => undefined);
        await rm(userDataDir, { recursive: true, force: true, maxRetries: 3 });
      })();
      return closing;
    },
  };
}

/** A served file: a string or bytes (type guessed from the path's extension), or an explicit body and type. */
export type PageFile = string | Uint8Array | { body: string | Uint8Array; type: string };

export interface ServePageOptions {
  /** Called for requests that match no file; return true once it has answered. Default: 404. */
  fallback?: (request: IncomingMessage, response: ServerResponse) => boolean | Promise<boolean>;
  /** Default 127.0.0.1 (Chromium treats it as a secure context, so WebRTC and crypto.subtle work over http). */
  host?: string;
}

export interface ServedPage {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  origin: string;
  port: number;
  close(): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm",
};

/**
 * Serves a page on a free loopback port: `servePage(html)` answers `/` with it; `servePage({ "/": html,
 * "/app.js": js })` serves each path exactly (query strings ignored). Responses are never cached.
 */
export async function servePage(content: string | Record<string, PageFile>, options: ServePageOptions = {}): Promise<ServedPage> {
  const files: Record<string, PageFile> = typeof content === "string" ? { "/": content } : content;
  const server = createServer((request, response) => {
    void (async () => {
      const pathname = new URL(request.url ?? "/", "http://localhost").pathname;
      const file = files[pathname] ?? (pathname.endsWith("/") ? files[`${pathname}index.html`] : undefined);
      if (file !== undefined && (request.method === "GET" || request.method === "HEAD")) {
        const { body, type } = typeof file === "object" && "type" in file ? file : { body: file, type: contentType(pathname) };
        response.writeHead(200, { "content-type": type, "cache-control": "no-store" });
        response.end(request.method === "HEAD" ? undefined : body);
        return;
      }
      if (options.fallback && (await options.fallback(request, response))) return;
      if (pathname === "/favicon.ico") {
        // Chromium asks for it on every page load; a 404 would be logged as a console error
        response.writeHead(204);
        response.end();
        return;
      }
      response.writeHead(404, { "content-type": "text/plain" });
      response.end(`no ${pathname}\n`);
    })().catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
      response.end(String(error));
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url: `${origin}/`,
    origin,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function contentType(pathname: string): string {
  if (pathname.endsWith("/")) return CONTENT_TYPES[".html"]!;
  return CONTENT_TYPES[path.extname(pathname)] ?? "application/octet-stream";
}
