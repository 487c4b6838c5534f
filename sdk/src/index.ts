/**
 * The native Reactor SDK: `new Client({ apiUrl, modelName })`, then `connect(jwt)`. Browser ESM bundle
 * (sdk/build.ts) and Node (pass `WebSocket` / `RTCPeerConnection` implementations when the runtime lacks them).
 */
export { Client } from "./client.ts";
export { CommandHandle, type CommandPolicy, type CommandState } from "./command-queue.ts";
export type { ClientStatus } from "./connection-state.ts";
export { ReactorError, SDK_ERROR_CODES, type ErrorComponent, type ReactorErrorCode, type SdkErrorCode } from "./errors.ts";
export type { ClientEvents, SendCommandOptions, SessionInfo } from "./events.ts";
export type { ClientOptions, TokenSource } from "./options.ts";
export type { RTCPeerConnectionConstructor } from "./peer-link.ts";
export { jitteredBackoff, type BackoffOptions, type ReconnectContext, type ReconnectPolicy } from "./reconnect-policy.ts";
export type { WebSocketConstructor } from "./signaling-socket.ts";
export type { ClientStats } from "./stats-sampler.ts";
export { FileRef, type UploadFileOptions, type UploadProgress } from "./uploads.ts";
