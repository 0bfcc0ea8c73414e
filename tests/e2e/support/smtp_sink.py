#!/usr/bin/env python3
"""A real SMTP server for Osprey's end-to-end tests (aiosmtpd), keeping what it receives.

    smtp_sink.py --port PORT --dir DIR [--user USER --password PASSWORD]

Listens on 127.0.0.1:PORT (0: a free port) and prints the port on stdout as its first line
once it accepts connections. Every message received is written to DIR as NNNNNN.eml (the
message as received), after NNNNNN.json with its envelope ({"mail_from": ..., "rcpt_tos":
[...]}); each file is written under a temporary name and renamed, so a reader never sees half
a file. With --user and --password, AUTH PLAIN and LOGIN are offered without TLS and required
before MAIL; wrong credentials get 535. Exits when its stdin closes (the test that started it
is gone) or on SIGTERM.

aiosmtpd is installed by scripts/lib/smtp.sh (sourced by scripts/test.sh).
"""

import argparse
import asyncio
import itertools
import json
import logging
import os
import signal
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Keeper:
    """Writes each message and its envelope to the output folder."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.numbers = itertools.count(1)

    def _write(self, name, data):
        tmp = os.path.join(self.out_dir, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.out_dir, name))

    async def handle_DATA(self, server, session, envelope):
        n = next(self.numbers)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        self._write("%06d.json" % n, json.dumps(meta).encode())
        self._write("%06d.eml" % n, envelope.original_content or envelope.content)
        return "250 2.0.0 Message accepted for delivery"


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        ):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return authenticate


def exit_when_stdin_closes(loop, stop):
    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except Exception:
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, daemon=True).start()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    os.makedirs(args.dir, exist_ok=True)
    # AUTH without TLS is what these tests want: no warnings about it on every connection.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)

    keeper = Keeper(args.dir)
    options = {"hostname": "smtp-sink.test", "ident": "osprey-test-smtp-sink"}
    if args.user is not None:
        options.update(
            authenticator=authenticator_for(args.user, args.password),
            auth_required=True,
            auth_require_tls=False,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(keeper, **options), host="127.0.0.1", port=args.port
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    exit_when_stdin_closes(loop, stop)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
