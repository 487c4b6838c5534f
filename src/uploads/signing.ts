/**
 * Presigned upload URLs: `PUT {origin}/uploads/{upload_id}?session=…&size=…&type=…&expires=…&signature=…`.
 * The signature is HMAC-SHA-256, with UPLOAD_SIGNING_SECRET, over the upload id, its session, its size, its MIME
 * type and the expiry, so none of them can be changed. The secret may list several values (comma-separated): the
 * first signs, any verifies (rotation).
 */
import { base64url } from "../../lib/encoding.ts";
import { UPLOAD_ID_PATTERN } from "../../protocol/uploads.ts";
import { ApiError } from "../errors.ts";

export interface UploadGrant {
  uploadId: string;
  sessionId: string;
  size: number;
  mimeType: string;
  /** Unix seconds. */
  expires: number;
}

const MIN_SECRET_CHARS = 32;
const SESSION_ID = /^ses_[A-Za-z0-9_-]{22}$/;
const DECIMAL = /^(0|[1-9]\d{0,15})$/;
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/** The signing secrets, newest first; UPLOADS_DISABLED when there is none, MISCONFIGURED when one is too short. */
export function signingSecrets(env: { UPLOAD_SIGNING_SECRET?: string }): string[] {
  const secrets = (env.UPLOAD_SIGNING_SECRET ?? "")
    .split(",")
    .map((secret) => secret.trim())
    .filter(Boolean);
  if (secrets.length === 0) throw new ApiError("UPLOADS_DISABLED");
  if (secrets.some((secret) => secret.length < MIN_SECRET_CHARS)) {
    throw new ApiError("MISCONFIGURED", `Every UPLOAD_SIGNING_SECRET must be at least ${MIN_SECRET_CHARS} characters.`);
  }
  return secrets;
}

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keys.set(secret, key);
  }
  return key;
}

const signedText = (grant: UploadGrant) =>
  encoder.encode(["reactor-upload-v1", grant.uploadId, grant.sessionId, grant.size, grant.mimeType, grant.expires].join("\n"));

export async function signGrant(secret: string, grant: UploadGrant): Promise<string> {
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(secret), signedText(grant));
  return base64url(new Uint8Array(signature));
}

export async function presignedUrl(origin: string, secret: string, grant: UploadGrant): Promise<string> {
  const query = new URLSearchParams({
    session: grant.sessionId,
    size: String(grant.size),
    type: grant.mimeType,
    expires: String(grant.expires),
    signature: await signGrant(secret, grant),
  });
  return `${origin}/uploads/${grant.uploadId}?${query}`;
}

/** The grant a presigned URL carries, not yet verified; UPLOAD_URL_INVALID if a part is missing or malformed. */
export function readGrant(url: URL, uploadId: string): { grant: UploadGrant; signature: string } {
  const query = url.searchParams;
  const [sessionId, size, mimeType, expires, signature] = ["session", "size", "type", "expires", "signature"].map((name) => query.get(name) ?? "");
  const problem =
    (!UPLOAD_ID_PATTERN.test(uploadId) && "upload id") ||
    (!SESSION_ID.test(sessionId!) && "session") ||
    (!DECIMAL.test(size!) && "size") ||
    ((mimeType!.length === 0 || mimeType!.length > 256) && "type") ||
    (!DECIMAL.test(expires!) && "expires") ||
    (!SIGNATURE.test(signature!) && "signature");
  if (problem) throw new ApiError("UPLOAD_URL_INVALID", `The upload URL's ${problem} is missing or malformed.`);
  return { grant: { uploadId, sessionId: sessionId!, size: Number(size), mimeType: mimeType!, expires: Number(expires) }, signature: signature! };
}

/** Whether one of the secrets signed the grant (compared in constant time by WebCrypto). */
export async function grantSigned(secrets: readonly string[], grant: UploadGrant, signature: string): Promise<boolean> {
  const bytes = Uint8Array.from(atob(`${signature.replaceAll("-", "+").replaceAll("_", "/")}=`), (char) => char.charCodeAt(0));
  const text = signedText(grant);
  for (const secret of secrets) {
    if (await crypto.subtle.verify("HMAC", await hmacKey(secret), bytes, text)) return true;
  }
  return false;
}
