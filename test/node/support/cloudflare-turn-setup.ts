/**
 * Global setup of the worker test project (vitest.config.ts): starts the Cloudflare Realtime TURN stand-in in Node,
 * where it can listen on a loopback port, and hands its address to the tests inside workerd
 * (test/worker/turn-providers.test.ts, through `inject`).
 */
import type { TestProject } from "vitest/node";
import { startCloudflareTurnStandIn } from "./cloudflare-turn.ts";

export interface CloudflareTurnStandInAddress {
  url: string;
  keyId: string;
  apiToken: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    cloudflareTurnStandIn: CloudflareTurnStandInAddress;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const standIn = await startCloudflareTurnStandIn();
  project.provide("cloudflareTurnStandIn", { url: standIn.url, keyId: standIn.keyId, apiToken: standIn.apiToken });
  return () => standIn.close();
}
