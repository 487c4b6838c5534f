"""A troubled wire between two interfaces: every Ethernet frame that arrives on one leaves on the other after a delay
(with jitter, order kept), unless it is dropped. tools/netns.ts runs it inside a wire namespace in place of
`tc netem`, which this machine's kernel lacks. Standard library only.

    python3 netns-wire.py <if-a> <if-b> <delay-ms> <jitter-ms> <loss-percent>
"""

import errno
import heapq
import random
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def open_raw(name):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((name, 0))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


def main():
    a_name, b_name = sys.argv[1], sys.argv[2]
    delay, jitter, loss = float(sys.argv[3]) / 1000, float(sys.argv[4]) / 1000, float(sys.argv[5]) / 100
    a, b = open_raw(a_name), open_raw(b_name)
    other = {a.fileno(): b, b.fileno(): a}
    # Frames waiting to leave: (due, sequence, socket, frame); per direction the last due time, so jitter never
    # reorders a direction's frames (as netem does when its delay is given with a rate or a distribution).
    queue = []
    last_due = {a.fileno(): 0.0, b.fileno(): 0.0}
    sequence = 0
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([a, b], [], [], timeout)
        now = time.monotonic()
        for sock in readable:
            while True:
                try:
                    frame, address = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if address[2] == PACKET_OUTGOING:
                    continue  # our own send, seen again on its way out
                if loss > 0 and random.random() < loss:
                    continue
                due = now + delay + (random.uniform(-jitter, jitter) if jitter > 0 else 0)
                due = max(due, last_due[sock.fileno()])
                last_due[sock.fileno()] = due
                sequence += 1
                heapq.heappush(queue, (due, sequence, other[sock.fileno()], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError:
                pass  # a full queue or a frame too large drops it, as a real link would


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
    except OSError as error:
        if error.errno not in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
            raise
        # one side's interface went away (its host moved to another network): the wire has nothing left to join
