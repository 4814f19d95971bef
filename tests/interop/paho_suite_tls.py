"""Runs the Eclipse Paho MQTT 5 interoperability tests (client_test5.py from
github.com/eclipse/paho.mqtt.testing, an MQTT conformance suite we did not
write) against an MQTT server that requires mutual TLS.

The suite speaks plain TCP, so this script puts a small TLS client proxy in
front of it: every connection the suite opens to 127.0.0.1:<local port> is
carried over a new mutual-TLS connection (the given client certificate) to
the server. A close by the suite closes the TLS connection without a DISCONNECT, as a
dropped network connection would (the suite's terminate() relies on that
for will messages); a close by the server half-closes the suite's socket,
so the suite reads everything the server sent before it closed.

usage: paho_suite_tls.py SUITE_DIR HOST PORT CA_PEM CERT_PEM KEY_PEM [TEST ...]

SUITE_DIR is a checkout of paho.mqtt.testing; TEST names limit the run
(e.g. Test.test_basic). Prints unittest's verbose report on stderr and
exits with its status.
"""

import asyncio
import os
import runpy
import socket
import ssl
import sys
import threading
import unittest


def start_proxy(host, port, ctx):
    """Listens on a free loopback port; returns it."""
    ready = threading.Event()
    holder = {}

    async def pipe(reader, writer, half_close):
        """Copies until EOF; then half-closes (server to suite: the suite
        may still write, as to a TCP peer that has not read its last
        bytes yet) or closes (suite to server: a dropped connection)."""
        writable = True
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if not writable:
                    continue  # the other side is gone: drain until EOF
                try:
                    writer.write(data)
                    await writer.drain()
                except (ConnectionError, OSError, ssl.SSLError):
                    writable = False
        except (ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            try:
                if half_close and writer.can_write_eof():
                    writer.write_eof()
                else:
                    writer.close()
            except Exception:
                pass

    async def handle(plain_reader, plain_writer):
        try:
            tls_reader, tls_writer = await asyncio.open_connection(
                host, port, ssl=ctx, server_hostname=host
            )
        except Exception as e:  # refused handshake: drop the plain side
            print(f"proxy: TLS connection failed: {e!r}", file=sys.stderr, flush=True)
            plain_writer.close()
            return
        sock = plain_writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            pipe(plain_reader, tls_writer, False), pipe(tls_reader, plain_writer, True)
        )
        plain_writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        holder["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await server.serve_forever()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("proxy did not start")
    return holder["port"]


class ReportingResult(unittest.TextTestResult):
    """Also prints one machine-readable line per case on stdout."""

    def _report(self, test, outcome):
        print(f"CERTBOUND-RESULT {test._testMethodName} {outcome}", flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._report(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._report(test, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._report(test, "ERROR")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._report(test, "skipped")


def main():
    suite_dir, host, port, ca, cert, key = sys.argv[1:7]
    # The suite calls unittest.main(): make it report every case on stdout.
    real_main = unittest.main
    unittest.main = lambda *a, **kw: real_main(
        *a, testRunner=unittest.TextTestRunner(resultclass=ReportingResult, verbosity=2), **kw
    )
    tests = sys.argv[7:]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    local = start_proxy(host, int(port), ctx)
    interop = os.path.join(suite_dir, "interoperability")
    sys.path.insert(0, interop)
    os.chdir(interop)
    sys.argv = ["client_test5.py", "-v", "-p", str(local)] + tests
    try:
        runpy.run_path(os.path.join(interop, "client_test5.py"), run_name="__main__")
    except SystemExit as e:
        sys.stderr.flush()
        os._exit(e.code if isinstance(e.code, int) else 1)
    os._exit(0)


if __name__ == "__main__":
    main()
