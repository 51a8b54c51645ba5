#!/usr/bin/env python3
"""Raw HTTP/2 client that splits frame headers across syscalls (tests/grpc.rs).

Usage: h2_split_client.py PORT N [--tls]
Waits for a line on stdin (the test lets it go once the agent traces it),
then on one h2c connection (or TLS with ALPN h2) sends N GET requests one
after another, alternating "/split/<i>" (200) and "/status/404". Each
HEADERS frame is sent in two writes cut inside its 9-byte frame header
(after 1..8 bytes), 30 ms apart, so the server reads it in two pieces too;
responses are read 5 bytes at a time, so every frame header the client
reads is split as well. Prints "done N <statuses>".
"""
import socket
import ssl
import sys
import time


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(5)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        h = self.read(9)
        length = int.from_bytes(h[0:3], "big")
        payload = self.read(length)
        return h[3], h[4], int.from_bytes(h[5:9], "big") & 0x7FFFFFFF, payload


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def literal(index, value):
    """Literal header field without indexing, name from the static table."""
    v = value.encode()
    assert index < 15 and len(v) < 127
    return bytes([index, len(v)]) + v


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    tls = "--tls" in sys.argv
    sys.stdin.readline()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
        assert sock.selected_alpn_protocol() == "h2"
    conn = Conn(sock)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0, b""))
    statuses = []
    for i in range(n):
        stream = 2 * i + 1
        path = f"/split/{i}" if i % 2 == 0 else "/status/404"
        # :method GET, :scheme http, :path, :authority
        block = b"\x82\x86" + literal(4, path) + literal(1, f"127.0.0.1:{port}")
        req = frame(0x1, 0x5, stream, block)  # END_STREAM | END_HEADERS
        cut = 1 + i % 8
        sock.sendall(req[:cut])
        time.sleep(0.03)
        sock.sendall(req[cut:])
        status = None
        while True:
            kind, flags, sid, payload = conn.frame()
            if kind == 0x4 and not flags & 0x1:
                sock.sendall(frame(0x4, 0x1, 0, b""))  # SETTINGS ACK
            elif kind == 0x6 and not flags & 0x1:
                sock.sendall(frame(0x6, 0x1, 0, payload))  # PING ACK
            elif kind == 0x7:
                raise RuntimeError("GOAWAY")
            if sid != stream:
                continue
            if kind == 0x1:
                # The server's first header is :status: 0x88 is 200 (static
                # table); anything else is another code (404 here).
                status = "200" if payload[:1] == b"\x88" else "other"
            if kind == 0x3:
                raise RuntimeError("RST_STREAM")
            if kind in (0x0, 0x1) and flags & 0x1:
                break
        statuses.append(status)
    sock.close()
    print(f"done {n} {','.join(statuses)}", flush=True)


if __name__ == "__main__":
    main()
