"""The notifier: sends what the ledger's outbox holds for ended requests, and marks it sent.

Every gateway replica runs one (``Notifier.run``). It claims due notifications with a lease
(``Ledger.claim_due``: another replica skips them meanwhile), sends each on its channel and
records the outcome: sent, due again after a backoff, or given up. A replica that stops
between sending and marking leaves the lease to run out, and the notification is sent again:
at least once, always under the request's one message id (``completion_message_id``) for
receivers to de-duplicate by.

- broker: ``request.completed`` with that envelope id, retried until the broker confirms;
- webhook: the same payload as the body, signed (``domain.completion.signed_headers``),
  retried up to ``notify.max_attempts`` on a network error, a time-out, 408/425/429 or 5xx;
  another 4xx, a host no longer in ``notify.webhook_allowed_hosts`` or no
  ``notify.webhook_secret`` gives it up at once;
- email: through ``notify.smtp_host``, retried as a webhook.
Nothing here needs the broker but the broker channel, so the notifier runs (and is tested)
without one.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import uuid
from collections.abc import Callable

from datastore_common.domain.completion import (
    email_text,
    host_allowed,
    retry_delay,
    signed_headers,
)
from datastore_common.errors import DatastoreError, PeerUnavailableError, PermanentError
from datastore_common.logging import get_logger
from datastore_common.messages import RequestCompleted
from datastore_common.ports import Publisher
from datastore_common.settings import NotifySettings
from datastore_gateway.ledger import Delivery, Ledger
from datastore_gateway.metrics import NOTIFICATIONS
from datastore_gateway.notifications import MailSender, WebhookSender

log = get_logger(__name__)

#: Notifications one replica claims at once, and how long it has to send them.
BATCH = 50
LEASE_SECONDS = 120.0
#: The broker's request.completed is retried for as long as it takes, on this ladder.
BROKER_RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0)


class Notifier:
    def __init__(
        self,
        ledger: Ledger,
        settings: NotifySettings,
        *,
        publisher: Publisher | None,
        webhooks: WebhookSender,
        mail: MailSender | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._publisher = publisher
        self._webhooks = webhooks
        self._mail = mail
        self._clock = clock

    async def run(self) -> None:
        """Deliver what is due every ``notify.poll_seconds``, for ever."""
        while True:
            try:
                await self.deliver_due()
            except DatastoreError as exc:
                log.warning("notifier_outbox_unavailable", error=str(exc))
            except Exception:
                # A bug must not stop every later notification: log it and go on.
                log.exception("notifier_failed")
            await asyncio.sleep(self._settings.poll_seconds)

    async def deliver_due(self) -> int:
        """Send every notification due now (a batch at a time); how many were sent."""
        sent = 0
        while True:
            due = await self._ledger.claim_due(limit=BATCH, lease_seconds=LEASE_SECONDS)
            if not due:
                return sent
            outcomes = await asyncio.gather(*(self._deliver(d) for d in due))
            sent += sum(outcomes)
            if len(due) < BATCH:
                return sent

    async def _deliver(self, delivery: Delivery) -> bool:
        try:
            await self._send(delivery)
        except DatastoreError as exc:
            await self._failed(delivery, exc)
            return False
        except Exception as exc:
            # Unexpected (a sender's bug, a payload it cannot read): retried, and bounded
            # by max_attempts like any other failure, never left to its lease for ever.
            log.exception("notification_failed", correlation_id=delivery.request_id)
            await self._failed(delivery, PeerUnavailableError(f"{type(exc).__name__}: {exc}"))
            return False
        await self._ledger.delivered(delivery)
        NOTIFICATIONS.labels(channel=delivery.channel, outcome="sent").inc()
        log.info(
            "notification_sent",
            correlation_id=delivery.request_id,
            channel=delivery.channel,
            attempts=delivery.attempts,
        )
        return True

    async def _failed(self, delivery: Delivery, exc: DatastoreError) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if delivery.channel == "broker":
            wait = retry_delay(delivery.attempts, BROKER_RETRY_DELAYS, None)
        elif isinstance(exc, PermanentError):
            wait = None
        else:
            wait = retry_delay(
                delivery.attempts, self._settings.retry_delays, self._settings.max_attempts
            )
        await self._ledger.not_delivered(delivery, error, retry_in=wait)
        fields = {
            "correlation_id": delivery.request_id,
            "channel": delivery.channel,
            "attempts": delivery.attempts,
            "error": error,
        }
        if wait is None:
            NOTIFICATIONS.labels(channel=delivery.channel, outcome="given_up").inc()
            log.error("notification_given_up", **fields)
        else:
            NOTIFICATIONS.labels(channel=delivery.channel, outcome="retried").inc()
            log.warning("notification_retry", retry_in=wait, **fields)

    async def _send(self, delivery: Delivery) -> None:
        completed = RequestCompleted.model_validate_json(delivery.payload)
        if delivery.channel == "broker":
            if self._publisher is None:
                raise PeerUnavailableError("no broker publisher in this process yet")
            await self._publisher.publish(
                completed,
                correlation_id=delivery.request_id,
                user=completed.owner,
                message_id=uuid.UUID(delivery.message_id),
            )
        elif delivery.channel == "webhook":
            await self._post(delivery)
        else:
            if self._mail is None:
                raise NotConfiguredError("e-mail is not configured here (notify.smtp_host)")
            subject, body = email_text(completed)
            await self._mail.send(
                str(delivery.target), subject, body, message_id=delivery.message_id
            )

    async def _post(self, delivery: Delivery) -> None:
        url = str(delivery.target)
        host = urllib.parse.urlsplit(url).hostname or ""
        if not host_allowed(host, self._settings.webhook_allowed_hosts):
            raise NotConfiguredError(f"webhook host {host!r} not in notify.webhook_allowed_hosts")
        secret = self._settings.webhook_secret
        if secret is None:
            raise NotConfiguredError("webhooks are not configured here (notify.webhook_secret)")
        body = delivery.payload.encode()
        headers = signed_headers(
            secret.get_secret_value().encode(),
            body,
            timestamp=int(self._clock()),
            delivery_id=uuid.UUID(delivery.message_id),
        )
        await self._webhooks.post(url, body, headers)


class NotConfiguredError(PermanentError):
    """This gateway cannot send on the channel (no secret, no SMTP server, host not allowed)."""
