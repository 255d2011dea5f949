"""The local mail sink of `make run` and the tests: an SMTP server that files every message in a
Maildir, and a small web mailbox to read them (links clickable), e.g. to confirm an alert.

`python -m services.notifier.sink --maildir .local/mail --smtp-port 1025 --http-port 8025`.
Development only: it accepts mail for anyone from anyone and never relays it.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import logging
import mailbox
import re
import socket
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse

__all__ = ["MailSink", "free_port", "mailbox_app", "messages"]

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Handler:
    def __init__(self, maildir: Path) -> None:
        for sub in ("tmp", "new", "cur"):  # Maildir(create=True) skips them when the folder exists
            (Path(maildir) / sub).mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        if content is None:  # aiosmtpd sets it before handling DATA; its type allows None
            return "554 Transaction failed: no message content"
        self.maildir.add(content)
        return "250 Message accepted for delivery"


class MailSink:
    """The SMTP side, on its own thread (aiosmtpd's Controller); `start()` returns once it listens."""

    def __init__(self, maildir: Path, port: int, host: str = "127.0.0.1") -> None:
        self.maildir, self.port, self.host = Path(maildir), port, host
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every address at INFO
        self._controller = Controller(_Handler(self.maildir), hostname=host, port=port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def messages(maildir: Path) -> list[tuple[str, EmailMessage]]:
    """(key, message) of every message in the Maildir, oldest first."""
    found = []
    for sub in ("new", "cur"):
        for path in (Path(maildir) / sub).glob("*"):
            found.append((path.stat().st_mtime_ns, path.name.split(":")[0], path))
    return [
        (key, email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
        for _, key, path in sorted(found)
    ]


def _linkify(text: str) -> str:
    return re.sub(r"(https?://[^\s<>\"]+)", r'<a href="\1">\1</a>', html.escape(text, quote=False))


_PAGE = """<!doctype html><html lang="en-GB"><head><meta charset="utf-8">
<title>{title} – local mailbox</title>
<style>body{{font-family:system-ui,Arial,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}}
td,th{{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}} pre{{white-space:pre-wrap}}</style>
</head><body><h1>{title}</h1>{body}</body></html>"""


def mailbox_app(maildir: Path) -> FastAPI:
    """The web mailbox: `/` lists messages, `/m/{key}` shows one, `.html` its HTML part, `.eml` its source."""
    app = FastAPI(title="local mailbox", docs_url=None, redoc_url=None, openapi_url=None)

    def find(key: str) -> EmailMessage:
        for k, msg in messages(maildir):
            if k == key:
                return msg
        raise HTTPException(404, "no such message")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        rows = "".join(
            f"<tr><td>{html.escape(str(m['Date']))}</td><td>{html.escape(str(m['To']))}</td>"
            f'<td><a href="/m/{k}">{html.escape(str(m["Subject"]))}</a></td></tr>'
            for k, m in reversed(messages(maildir))
        )
        body = f"<p>Every mail the services sent on this machine ({maildir}).</p>" + (
            f"<table><tr><th>date</th><th>to</th><th>subject</th></tr>{rows}</table>"
            if rows
            else "<p>No mail yet.</p>"
        )
        return _PAGE.format(title="Local mailbox", body=body)

    # The suffixed routes first: a Maildir key has dots, so `/m/{key}` would match them too.
    @app.get("/m/{key}.html", response_class=HTMLResponse)
    async def show_html(key: str) -> str:
        part = find(key).get_body(("html",))
        if part is None:
            raise HTTPException(404, "this message has no HTML part")
        content: str = part.get_content()
        return content

    @app.get("/m/{key}.eml", response_class=PlainTextResponse)
    async def source(key: str) -> str:
        return find(key).as_string()

    @app.get("/m/{key}", response_class=HTMLResponse)
    async def show(key: str) -> str:
        msg = find(key)
        headers = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"
            for name, value in msg.items()
        )
        text = msg.get_body(("plain",))
        body = (
            f'<p><a href="/">All mail</a> · <a href="/m/{key}.html">HTML version</a> · '
            f'<a href="/m/{key}.eml">Source</a></p><table>{headers}</table>'
            f"<pre>{_linkify(text.get_content()) if text else ''}</pre>"
        )
        return _PAGE.format(title=html.escape(str(msg["Subject"])), body=body)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maildir", type=Path, default=Path(".local/mail"))
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    args = parser.parse_args()
    with MailSink(args.maildir, args.smtp_port):
        uvicorn.run(mailbox_app(args.maildir), host="127.0.0.1", port=args.http_port, log_level="warning")


if __name__ == "__main__":
    main()
