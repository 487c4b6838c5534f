/**
 * Signaling messages the size of real ones, for relay benchmarks: an SDP offer and answer as a browser writes them
 * for one video track (ICE credentials, DTLS fingerprint, a list of codecs with their feedback and fmtp lines), and a
 * trickled ICE candidate. Every path in the side-by-side suite relays these same texts.
 */

const CODECS: [number, string, string[]][] = [
  [96, "VP8/90000", []],
  [97, "rtx/90000", ["apt=96"]],
  [98, "VP9/90000", ["profile-id=0"]],
  [99, "rtx/90000", ["apt=98"]],
  [100, "VP9/90000", ["profile-id=2"]],
  [101, "rtx/90000", ["apt=100"]],
  [102, "H264/90000", ["level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"]],
  [103, "rtx/90000", ["apt=102"]],
  [104, "H264/90000", ["level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f"]],
  [105, "rtx/90000", ["apt=104"]],
  [106, "H264/90000", ["level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"]],
  [107, "rtx/90000", ["apt=106"]],
  [108, "AV1/90000", ["level-idx=5;profile=0;tier=0"]],
  [109, "rtx/90000", ["apt=108"]],
  [110, "H264/90000", ["level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"]],
  [111, "rtx/90000", ["apt=110"]],
  [112, "red/90000", []],
  [113, "rtx/90000", ["apt=112"]],
  [114, "ulpfec/90000", []],
];

const FEEDBACK = ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"];
const EXTENSIONS = [
  "urn:ietf:params:rtp-hdrext:toffset",
  "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
  "urn:3gpp:video-orientation",
  "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
  "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
  "http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
  "http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
  "http://www.webrtc.org/experiments/rtp-hdrext/color-space",
  "urn:ietf:params:rtp-hdrext:sdes:mid",
  "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
  "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
];

function sdp(role: "offer" | "answer"): string {
  const codecs = role === "offer" ? CODECS : CODECS.slice(0, 4);
  const lines = [
    "v=0",
    `o=- 4611731400430051336 2 IN IP4 127.0.0.1`,
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS",
    `m=video 9 UDP/TLS/RTP/SAVPF ${codecs.map(([pt]) => pt).join(" ")}`,
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    `a=ice-ufrag:${role === "offer" ? "EsAw" : "k3Jq"}`,
    `a=ice-pwd:${role === "offer" ? "bP+XJMM09aR8AiX1jdukzR6Y" : "f9W2nq7sLkx0oPzYv3uTtR1c"}`,
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E",
    `a=setup:${role === "offer" ? "actpass" : "active"}`,
    "a=mid:0",
    ...(role === "offer" ? EXTENSIONS : EXTENSIONS.slice(0, 4)).map((uri, index) => `a=extmap:${index + 1} ${uri}`),
    role === "offer" ? "a=recvonly" : "a=sendonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
  ];
  for (const [pt, name, fmtp] of codecs) {
    lines.push(`a=rtpmap:${pt} ${name}`);
    if (!name.startsWith("rtx") && !name.startsWith("red") && !name.startsWith("ulpfec")) {
      for (const feedback of FEEDBACK) lines.push(`a=rtcp-fb:${pt} ${feedback}`);
    }
    for (const parameters of fmtp) lines.push(`a=fmtp:${pt} ${parameters}`);
  }
  if (role === "answer")
    lines.push("a=ssrc-group:FID 2512370581 1783512098", "a=ssrc:2512370581 cname:gMlc5NCcYkJ9Ydbp", "a=ssrc:1783512098 cname:gMlc5NCcYkJ9Ydbp");
  return `${lines.join("\r\n")}\r\n`;
}

/** A browser's offer for one receive-only video track: about 3.2 KB. */
export const OFFER_SDP = sdp("offer");
/** The runtime's answer with one send-only video track: about 1.2 KB. */
export const ANSWER_SDP = sdp("answer");

/** One trickled server-reflexive candidate, as `RTCIceCandidateInit` with the gateway's snake_case names. */
export const CLIENT_CANDIDATE = {
  candidate: "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0 ufrag EsAw network-cost 999",
  sdp_mid: "0",
  sdp_mline_index: 0,
};
export const RUNTIME_CANDIDATE = {
  candidate: "candidate:1467250027 1 udp 2122260223 198.51.100.20 51234 typ host generation 0 ufrag k3Jq network-id 1 network-cost 10",
  sdp_mid: "0",
  sdp_mline_index: 0,
};
