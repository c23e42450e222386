#!/usr/bin/env python3
"""Measures a proxy's memory growth per idle keep-alive connection.

Usage: idle_conns.py --port PORT --count N --pids PID[,PID...]

Opens N connections to 127.0.0.1:PORT, in batches, each sending one HTTP/1.1
keep-alive request and reading its whole response, then leaves them all open
and idle. Prints one line of key=value pairs:

  opened=N answered=N still_open=N before_kb=K after_kb=K

before_kb is the summed VmRSS of PIDS after one warm-up request (so one-time
setup such as the first upstream connection is not charged to the idle
connections), after_kb the same once all connections are idle. still_open
counts the connections the proxy had not closed when after_kb was read.
Exits non-zero if any connection could not be opened or was not answered.
Standard library only; every wait is bounded by --timeout.
"""
import argparse
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def response_complete(data):
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = 0
    for line in data[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= head_end + 4 + length


def open_batch(port, size, deadline):
    """Opens SIZE connections and waits for each one's response; returns
    (sockets, answered)."""
    conns = []
    selector = selectors.DefaultSelector()
    for _ in range(size):
        sock = socket.create_connection(("127.0.0.1", port), timeout=max(deadline - time.monotonic(), 0.1))
        sock.sendall(REQUEST)
        sock.setblocking(False)
        conns.append(sock)
        selector.register(sock, selectors.EVENT_READ, bytearray())
    pending = len(conns)
    answered = 0
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(deadline - time.monotonic(), 0.01)):
            chunk = key.fileobj.recv(65536)
            key.data.extend(chunk)
            if not chunk or response_complete(key.data):
                answered += 1 if chunk else 0
                pending -= 1
                selector.unregister(key.fileobj)
    selector.close()
    return conns, answered


def count_open(conns):
    """A connection the peer closed is readable with EOF; an idle one is not."""
    selector = selectors.DefaultSelector()
    for sock in conns:
        selector.register(sock, selectors.EVENT_READ)
    closed = 0
    for key, _ in selector.select(timeout=0):
        try:
            if not key.fileobj.recv(1, socket.MSG_PEEK):
                closed += 1
        except OSError:
            closed += 1
    selector.close()
    return len(conns) - closed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--pids", required=True, help="comma-separated PIDs whose VmRSS is summed")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait before the second reading")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    pids = [int(p) for p in args.pids.split(",")]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    deadline = time.monotonic() + args.timeout

    warm, _ = open_batch(args.port, 1, deadline)
    for sock in warm:
        sock.close()
    time.sleep(0.5)
    before = rss_kb(pids)

    conns = []
    answered = 0
    error = ""
    try:
        while len(conns) < args.count and time.monotonic() < deadline:
            batch, ok = open_batch(args.port, min(args.batch, args.count - len(conns)), deadline)
            conns += batch
            answered += ok
    except OSError as exc:
        error = " error=" + str(exc.strerror or exc).replace(" ", "_")
    time.sleep(args.settle)
    after = rss_kb(pids)
    still_open = count_open(conns)
    print(
        f"opened={len(conns)} answered={answered} still_open={still_open} "
        f"before_kb={before} after_kb={after}{error}"
    )
    for sock in conns:
        sock.close()
    return 0 if answered == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
