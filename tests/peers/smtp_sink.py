#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the e-mail tests: stores every mail it takes.

    python3 tests/peers/smtp_sink.py --dir DIR [--port PORT] [--auth USER:PASS]
        [--reject ADDR] [--tempfail ADDR] [--tempfail-data N]
        [--tls starttls|implicit --cert PEM --key PEM]

Listens on 127.0.0.1 on PORT (default: a free one) and prints the port on stdout once it
accepts connections. Each mail is written, as received (DATA, dot-unstuffed), to DIR/NNNN.eml;
its envelope to DIR/NNNN.envelope (MAIL FROM, then one RCPT TO a line). With --auth, AUTH
PLAIN/LOGIN with exactly USER:PASS is required before MAIL (over plain text too: the tests are
on loopback). RCPT TO ADDR is answered 550 for --reject and 451 for --tempfail, and each such
answer is appended to DIR/refused.log ("CODE ADDR"). The first N DATA commands are answered
451 with --tempfail-data N; each of those mails is kept as DIR/NNNN.tempfailed. With --tls
starttls the server offers STARTTLS and requires it before MAIL; with --tls implicit it speaks
TLS from the first byte (SMTPS). Exits when stdin closes, so it never outlives the test that
started it.
"""
import argparse
import asyncio
import os
import sys
import threading
import logging
import ssl
import warnings

warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:
    sys.stderr.write("smtp_sink: the aiosmtpd module is missing; install it: pip install aiosmtpd\n")
    sys.exit(3)


class Sink:
    def __init__(self, directory, reject, tempfail, tempfail_data):
        self.directory = directory
        self.reject = {a.lower() for a in reject}
        self.tempfail = {a.lower() for a in tempfail}
        self.tempfail_data = tempfail_data
        self.count = 0
        self.tempfailed = 0

    def refused(self, code, address):
        with open(os.path.join(self.directory, "refused.log"), "a") as f:
            f.write("%d %s\n" % (code, address))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            self.refused(550, address)
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address.lower() in self.tempfail:
            self.refused(451, address)
            return "451 4.3.0 <%s>: Temporary lookup failure" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.tempfailed < self.tempfail_data:
            self.tempfailed += 1
            path = os.path.join(self.directory, "%04d.tempfailed" % self.tempfailed)
            write_atomic(path, envelope.original_content)
            return "451 4.3.0 Temporary failure: try again later"
        self.count += 1
        base = os.path.join(self.directory, "%04d" % self.count)
        lines = [envelope.mail_from] + list(envelope.rcpt_tos)
        write_atomic(base + ".envelope", ("\n".join(lines) + "\n").encode())
        write_atomic(base + ".eml", envelope.original_content)
        return "250 2.0.0 Ok: queued as %04d" % self.count


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


def exit_when_stdin_closes():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--auth")
    ap.add_argument("--reject", action="append", default=[])
    ap.add_argument("--tempfail", action="append", default=[])
    ap.add_argument("--tempfail-data", type=int, default=0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", choices=["starttls", "implicit"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    handler = Sink(args.dir, args.reject, args.tempfail, args.tempfail_data)
    options = {}
    if args.auth:
        user, _, password = args.auth.partition(":")
        options = dict(
            authenticator=Authenticator(user, password),
            auth_required=True,
            # aiosmtpd knows of TLS only through STARTTLS; with --tls implicit every byte is
            # TLS anyway.
            auth_require_tls=args.tls == "starttls",
        )
    context = None
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    if args.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(handler, loop=loop, **options),
            "127.0.0.1",
            args.port,
            ssl=context if args.tls == "implicit" else None,
        )
    )
    port = server.sockets[0].getsockname()[1]
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(port, flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
