/** The wire protocol, imported by the gateway, the SDK and the runtime agent. */
export * from "./common.ts";
export * from "./runtime.ts";
export * from "./schema.ts";
export * from "./signaling.ts";
export * from "./sessions.ts";
export * from "./uploads.ts";
