#!/usr/bin/env python3
"""A real SMTP server for Alertman's integration tests (Debian's python3-aiosmtpd).

Usage: smtp_sink.py PORT OUT_DIR

Listens on 127.0.0.1:PORT; each message received is parsed with Python's email package and
written to OUT_DIR/N.json as {"from", "to", "subject", "text", "html", "content_type"}, so a
test reads the subject and both parts without a MIME parser of its own. Prints "ready" once
listening. Runs until killed.
"""
import email
import json
import os
import sys
import time
from email import policy

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        parts = {}
        for part in msg.walk():
            ct = part.get_content_type()
            if ct in ("text/plain", "text/html") and ct not in parts:
                parts[ct] = part.get_content()
        self.n += 1
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        tmp = os.path.join(self.out, ".%d.json" % self.n)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out, "%d.json" % self.n))
        return "250 Message accepted for delivery"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
