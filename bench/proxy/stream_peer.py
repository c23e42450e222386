#!/usr/bin/env python3
"""The two ends of stream.sh: an upstream and a client for large bodies.

Bodies are a repeating 0..255 byte pattern, generated and checked on the fly,
so a body of any size costs neither memory nor disk, and a byte lost,
repeated or reordered on the way is noticed.

  stream_peer.py upstream [--port 0]
      GET /bytes/N      answers N pattern bytes (Content-Length: N)
      PUT|POST /upload  reads the body, answers "received=N intact=yes|no"
      Prints "port=P" once listening.

  stream_peer.py get  --port P --bytes N [--rate BYTES_PER_S] [--watch PID]
  stream_peer.py put  --port P --bytes N [--watch PID]
      One transfer through 127.0.0.1:P. Prints one line of key=value pairs:
      bytes (counted by the receiving end), intact, status, seconds, and with
      --watch the RSS of process PID: rss_start_kb before the transfer,
      rss_max_kb (sampled every 100 ms), hwm_kb (VmHWM, reset before the
      transfer where the kernel allows it, so it is the transfer's peak).
      Exits 1 if the transfer is incomplete or damaged.

Debian's python3 only, standard library only.
"""
import argparse
import socket
import socketserver
import sys
import threading
import time

BLOCK = 1 << 20
# One block plus one period, so that a slice of up to BLOCK bytes can start
# at any phase of the pattern.
PATTERN = bytes(range(256)) * (BLOCK // 256 + 1)
READ_SIZE = 256 * 1024


class PatternCheck:
    """Counts bytes and checks them against the pattern at their offset."""

    def __init__(self):
        self.count = 0
        self.intact = True

    def feed(self, data):
        phase = self.count % 256
        if self.intact and data != PATTERN[phase:phase + len(data)]:
            self.intact = False
        self.count += len(data)


def send_pattern(sock, size, paced=None):
    sent = 0
    view = memoryview(PATTERN)
    while sent < size:
        n = min(BLOCK, size - sent)
        sock.sendall(view[:n])  # sent stays a multiple of 256 until the last piece
        sent += n
        if paced:
            paced(sent)


class Reader:
    """Buffered reads from a socket: a head, then exactly n body bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.pending = b""

    def head(self):
        while b"\r\n\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.pending += chunk
        head, self.pending = self.pending.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        return lines[0], fields

    def body(self, size, sink, paced=None):
        """Feeds up to size bytes to sink; returns how many arrived."""
        got = 0
        if self.pending:
            piece = self.pending[:size]
            self.pending = self.pending[len(piece):]
            sink(piece)
            got += len(piece)
        buf = bytearray(READ_SIZE)
        while got < size:
            n = self.sock.recv_into(buf, min(READ_SIZE, size - got))
            if n == 0:
                break
            sink(bytes(buf[:n]) if n < READ_SIZE else buf)
            got += n
            if paced:
                paced(got)
        return got


# --- the upstream -------------------------------------------------------------


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = Reader(sock)
        while True:
            parsed = reader.head()
            if parsed is None:
                return
            line, fields = parsed
            method, target = line.split(" ")[:2]
            if method == "GET" and target.startswith("/bytes/"):
                size = int(target[len("/bytes/"):])
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                             b"content-length: %d\r\n\r\n" % size)
                send_pattern(sock, size)
            elif method in ("PUT", "POST") and target == "/upload":
                if "content-length" not in fields:
                    self.answer(411, b"a content-length is needed\n")
                    return
                size = int(fields["content-length"])
                check = PatternCheck()
                if reader.body(size, check.feed) < size:
                    return
                self.answer(200, b"received=%d intact=%s\n" %
                            (check.count, b"yes" if check.intact else b"no"))
            else:
                self.answer(404, b"GET /bytes/N or PUT /upload\n")

    def answer(self, status, body):
        self.request.sendall(b"HTTP/1.1 %d X\r\ncontent-type: text/plain\r\n"
                             b"content-length: %d\r\n\r\n%s" % (status, len(body), body))


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def run_upstream(args):
    with Server(("127.0.0.1", args.port), Handler) as server:
        print("port=%d" % server.server_address[1], flush=True)
        server.serve_forever()


# --- the client ---------------------------------------------------------------


def status_kb(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return fields


class RssWatch:
    """Samples a process's VmRSS every 100 ms while a transfer runs."""

    def __init__(self, pid):
        self.pid = pid
        # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux
        # 4.0+), so the VmHWM read afterwards is this transfer's own peak.
        try:
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.start_kb = status_kb(pid)["VmRSS"]
        self.max_kb = self.start_kb
        self.samples = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(0.1):
            self.sample()

    def sample(self):
        try:
            self.max_kb = max(self.max_kb, status_kb(self.pid)["VmRSS"])
            self.samples += 1
        except OSError:
            pass

    def finish(self):
        self.done.set()
        self.thread.join()
        self.sample()
        hwm = status_kb(self.pid)["VmHWM"]
        return {"rss_start_kb": self.start_kb, "rss_max_kb": self.max_kb, "hwm_kb": hwm,
                "hwm_reset": "yes" if self.hwm_reset else "no", "samples": self.samples}


def pacer(rate):
    """Sleeps so that the bytes done so far take at least bytes/rate seconds."""
    if not rate:
        return None
    start = time.monotonic()

    def pace(done):
        ahead = done / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    return pace


def transfer(args):
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = Reader(sock)
    result = {"status": 0, "bytes": 0, "intact": "no"}
    watch = RssWatch(args.watch) if args.watch else None
    start = time.monotonic()
    try:
        if args.mode == "get":
            sock.sendall(b"GET /bytes/%d HTTP/1.1\r\nhost: bench\r\n\r\n" % args.bytes)
            line, fields = reader.head() or ("", {})
            result["status"] = int(line.split(" ")[1]) if line else 0
            check = PatternCheck()
            size = int(fields.get("content-length", "0"))
            reader.body(size, check.feed, pacer(args.rate))
            result["bytes"], result["intact"] = check.count, "yes" if check.intact else "no"
        else:
            # With 100-continue, a refusal (413) arrives before the body is
            # sent, instead of a reset in the middle of it.
            sock.sendall(b"PUT /upload HTTP/1.1\r\nhost: bench\r\nexpect: 100-continue\r\n"
                         b"content-length: %d\r\n\r\n" % args.bytes)
            line, fields = reader.head() or ("", {})
            if line.split(" ")[1:2] == ["100"]:
                send_pattern(sock, args.bytes, pacer(args.rate))
                line, fields = reader.head() or ("", {})
            result["status"] = int(line.split(" ")[1]) if line else 0
            body = []
            reader.body(int(fields.get("content-length", "0")), lambda d: body.append(bytes(d)))
            text = b"".join(body).decode("latin-1")
            answer = dict(p.split("=", 1) for p in text.split()) if result["status"] == 200 else {}
            result["bytes"] = int(answer.get("received", 0))
            result["intact"] = answer.get("intact", "no")
    except (OSError, ValueError) as e:
        result["error"] = type(e).__name__
    result["seconds"] = "%.3f" % (time.monotonic() - start)
    if watch:
        result.update(watch.finish())
    sock.close()
    print(" ".join("%s=%s" % kv for kv in result.items()), flush=True)
    complete = result["status"] == 200 and result["bytes"] == args.bytes
    return 0 if complete and result["intact"] == "yes" else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["upstream", "get", "put"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bytes", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0, help="bytes per second; 0: no limit")
    parser.add_argument("--watch", type=int, default=0, help="PID whose RSS to sample")
    args = parser.parse_args()
    if args.mode == "upstream":
        run_upstream(args)
        return 0
    return transfer(args)


if __name__ == "__main__":
    sys.exit(main())
