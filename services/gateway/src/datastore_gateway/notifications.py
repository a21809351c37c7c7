"""Telling people a request ended: the ports (``WebhookSender``, ``MailSender``) beside their
adapters (httpx; the standard library's SMTP client, in a worker thread).

Adapters raise ``PeerUnavailableError`` for what may work later (a receiver down, a 5xx, a
time-out, an SMTP server refusing for now) and ``DeliveryRefusedError`` for what never will
(a 4xx from the receiver, a mailbox the server refuses for good).
"""

from __future__ import annotations

import asyncio
import smtplib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate

import httpx

from datastore_common.errors import PeerUnavailableError, PermanentError
from datastore_common.settings import NotifySettings


class DeliveryRefusedError(PermanentError):
    """The receiver refused the notification for good: trying again would not help."""


class WebhookSender(ABC):
    @abstractmethod
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """POST ``body``; returns once the receiver answered 2xx."""


class MailSender(ABC):
    @abstractmethod
    async def send(self, to: str, subject: str, body: str, *, message_id: str) -> None:
        """Hand the mail to the server; returns once it accepted it."""


class HttpWebhookSender(WebhookSender):
    """POSTs with httpx; redirects are not followed (a webhook is called where it said)."""

    def __init__(self, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            answer = await self._client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise PeerUnavailableError(f"webhook {url}: {type(exc).__name__}: {exc}") from exc
        if answer.is_success:
            return
        why = f"webhook {url} answered {answer.status_code}"
        if answer.status_code in (408, 425, 429) or answer.status_code >= 500:
            raise PeerUnavailableError(why)
        raise DeliveryRefusedError(why)


class SmtpMailSender(MailSender):
    """Sends through ``notify.smtp_host`` with ``smtplib`` in a worker thread (one connection
    per mail: a few mails a minute at most)."""

    def __init__(self, settings: NotifySettings) -> None:
        if settings.smtp_host is None:
            raise ValueError("notify.smtp_host is not set")
        self._settings = settings
        self._host: str = settings.smtp_host

    async def send(self, to: str, subject: str, body: str, *, message_id: str) -> None:
        mail = EmailMessage()
        mail["From"] = self._settings.smtp_from
        mail["To"] = to
        mail["Subject"] = subject
        mail["Date"] = formatdate(usegmt=True)
        # One Message-ID however often it is sent: mail clients show a repeat once.
        mail["Message-ID"] = f"<{message_id}@datastore>"
        mail.set_content(body)
        try:
            await asyncio.to_thread(self._send, mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(500 <= code < 600 for code in codes):
                raise DeliveryRefusedError(f"mail server refused {to}: {exc.recipients}") from exc
            raise PeerUnavailableError(f"mail server refused {to} for now: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise PeerUnavailableError(
                f"mail server {self._host}:{self._settings.smtp_port}: {exc!r}"
            ) from exc

    def _send(self, mail: EmailMessage) -> None:
        settings = self._settings
        with smtplib.SMTP(
            self._host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                password = settings.smtp_password
                smtp.login(settings.smtp_username, password.get_secret_value() if password else "")
            smtp.send_message(mail)
