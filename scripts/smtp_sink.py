"""A local SMTP server for tests (aiosmtpd): appends every message it receives, decoded, as one
JSON line to the file given, prints "ready" once listening, and runs until its stdin closes.

    python smtp_sink.py PORT OUT.json
"""
import email
import json
import sys
from email.header import decode_header, make_header

from aiosmtpd.controller import Controller


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content)
        out = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(make_header(decode_header(msg["Subject"]))),
            "content_type": msg.get_content_type(),
            "message_id": msg.get("Message-ID"),
            "body": msg.get_payload(decode=True).decode(msg.get_content_charset() or "utf-8"),
        }
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps(out) + "\n")
        return "250 OK"


controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
