/** Just enough RTP (RFC 3550) and VP8 payload (RFC 7741) parsing to find key frames, without allocating. */

export interface RtpFields {
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  /** Offset of the payload in the packet. */
  payloadOffset: number;
}

/** The header fields of an RTP packet, or undefined if it is not one. */
export function rtpFields(packet: Buffer): RtpFields | undefined {
  if (packet.length < 12 || packet[0]! >> 6 !== 2) return undefined;
  const csrcCount = packet[0]! & 0x0f;
  let offset = 12 + 4 * csrcCount;
  if (packet[0]! & 0x10) {
    if (packet.length < offset + 4) return undefined;
    offset += 4 + 4 * packet.readUInt16BE(offset + 2);
  }
  if (offset > packet.length) return undefined;
  return { ssrc: packet.readUInt32BE(8), sequenceNumber: packet.readUInt16BE(2), timestamp: packet.readUInt32BE(4), payloadOffset: offset };
}

/**
 * Whether a VP8 RTP payload is the first packet of a key frame: descriptor S=1 and PID=0 (start of partition 0),
 * then the VP8 payload header's P bit 0.
 */
export function startsVp8KeyFrame(packet: Buffer, payloadOffset: number): boolean {
  let offset = payloadOffset;
  if (offset >= packet.length) return false;
  const descriptor = packet[offset]!;
  const start = (descriptor & 0x10) !== 0 && (descriptor & 0x07) === 0;
  if (!start) return false;
  offset++;
  if (descriptor & 0x80) {
    // X: extension octet I|L|T|K, then PictureID (1 or 2 octets), TL0PICIDX, TID/KEYIDX as flagged
    const extension = packet[offset++];
    if (extension === undefined) return false;
    if (extension & 0x80) offset += (packet[offset] ?? 0) & 0x80 ? 2 : 1;
    if (extension & 0x40) offset++;
    if (extension & 0x30) offset++;
  }
  return offset < packet.length && (packet[offset]! & 0x01) === 0;
}
