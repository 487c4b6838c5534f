/** Small WebSocket rules shared by the session and pool objects (hibernatable sockets). */

/**
 * Frames still arrive on a socket after this side closed it (the peer had them in flight), and sending on a
 * closing socket throws: answers to those go nowhere.
 */
export function sendIfOpen(ws: WebSocket, data: string): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(data);
}

/** Answers the peer's close frame: for a hibernatable socket the close handshake is left to the object. */
export function completeClose(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === WebSocket.CLOSED) return;
  ws.close(sendableCode(code) ? code : 1000, closeReason(reason));
}

/** 1005 (no code) and 1006 (abnormal) are reported to handlers but, like 1004 and 1015, may not be sent. */
const sendableCode = (code: number) => code >= 1000 && code < 5000 && code !== 1004 && code !== 1005 && code !== 1006 && code !== 1015;

/** A close reason cut to the 123 bytes a close frame allows (close() throws beyond that), on a character boundary. */
export function closeReason(reason: string): string {
  const bytes = new TextEncoder().encode(reason);
  if (bytes.byteLength <= 123) return reason;
  return new TextDecoder().decode(bytes.slice(0, 123)).replace(/\uFFFD+$/, "");
}
