"""The channels: one ``Notifier`` per configured destination, each speaking its real protocol.

- Slack: an incoming webhook, JSON over HTTPS.
- Email: SMTP (smtplib), STARTTLS and login when configured.
- PagerDuty: Events API v2, JSON over HTTPS; the routing key is added here, never logged.

``send`` returns on success and raises ``DeliveryError`` otherwise, saying whether trying
again can help (a timeout, a 5xx, a 429 can; a rejected payload or a refused login cannot).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import httpx

from shopstream.errors import ShopstreamError
from shopstream.settings import AlertsSettings

#: Connect/read timeout of every send: a hung receiver must not hold the worker up long.
TIMEOUT_S = 10.0
_BODY_SHOWN = 200


class DeliveryError(Exception):
    """A send that did not go through."""

    def __init__(self, message: str, *, response_code: int | None = None, retryable: bool):
        super().__init__(message)
        self.response_code = response_code
        self.retryable = retryable


@dataclass(frozen=True)
class Sent:
    """A send the receiver accepted."""

    response_code: int | None
    #: Something worth keeping although it went through (e.g. refused recipients).
    note: str | None = None


class Notifier(Protocol):
    channel: str

    def send(self, payload: dict[str, Any]) -> Sent: ...

    def close(self) -> None: ...


def _retryable_status(code: int) -> bool:
    return code in (408, 425, 429) or code >= 500


class _HttpNotifier:
    channel = ""

    def __init__(self, url: str, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url
        # One client per channel: keep-alive saves a TLS handshake on every alert.
        self.client = httpx.Client(timeout=timeout_s, headers={"User-Agent": "shopstream"})

    def _post(self, body: dict[str, Any]) -> Sent:
        try:
            response = self.client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            # Connect errors, timeouts, broken connections: the receiver may come back.
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.is_success:
            return Sent(response.status_code)
        shown = response.text[:_BODY_SHOWN].strip()
        raise DeliveryError(
            f"HTTP {response.status_code}: {shown}" if shown else f"HTTP {response.status_code}",
            response_code=response.status_code,
            retryable=_retryable_status(response.status_code),
        )

    def close(self) -> None:
        self.client.close()


class SlackNotifier(_HttpNotifier):
    """Posts the stored message to a Slack incoming webhook."""

    channel = "slack"

    def send(self, payload: dict[str, Any]) -> Sent:
        return self._post(payload)


class PagerDutyNotifier(_HttpNotifier):
    """Posts an Events API v2 event, adding the routing key."""

    channel = "pagerduty"

    def __init__(self, url: str, routing_key: str, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(url, timeout_s)
        self.routing_key = routing_key

    def send(self, payload: dict[str, Any]) -> Sent:
        return self._post({"routing_key": self.routing_key, **payload})


class EmailNotifier:
    """Sends a plain-text mail over SMTP, with STARTTLS (verified) and login if configured."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool,
        user: str,
        password: str,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.host, self.port, self.starttls = host, port, starttls
        self.user, self.password, self.timeout_s = user, password, timeout_s

    def send(self, payload: dict[str, Any]) -> Sent:
        message = EmailMessage()
        message["Subject"] = payload["subject"]
        message["From"] = payload["from"]
        message["To"] = ", ".join(payload["to"])
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="shopstream")
        message.set_content(payload["text"])
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password)
                refused = smtp.send_message(message, payload["from"], payload["to"])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"every recipient refused: {_refusals(exc.recipients)}",
                response_code=codes[0] if codes else None,
                retryable=any(400 <= code < 500 for code in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {text}",
                response_code=exc.smtp_code,
                retryable=400 <= exc.smtp_code < 500,
            ) from exc
        except (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError) as exc:
            # No STARTTLS offered, or a certificate we must not trust: waiting won't fix it.
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=False) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        note = f"refused: {_refusals(refused)}" if refused else None
        return Sent(250, note)

    def close(self) -> None:
        pass


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{rcpt} ({code} {reply.decode(errors='replace')})"
        for rcpt, (code, reply) in sorted(refused.items())
    )


def email_recipients(settings: AlertsSettings) -> list[str]:
    return [r.strip() for r in settings.alerts_email_to.split(",") if r.strip()]


def public_url(settings: AlertsSettings) -> str:
    """Where links in notifications point: the API's public base URL."""
    return (settings.alerts_public_url or f"http://{settings.api_host}:{settings.api_port}").rstrip(
        "/"
    )


def notifiers_from_settings(settings: AlertsSettings) -> dict[str, Notifier]:
    """A notifier for each configured channel, by channel name.

    Half an email configuration (a server without recipients, or the reverse) is an error,
    not a silently disabled channel.
    """
    recipients = email_recipients(settings)
    if settings.alerts_smtp_host and not recipients:
        raise ShopstreamError(
            "SHOPSTREAM_ALERTS_SMTP_HOST is set but SHOPSTREAM_ALERTS_EMAIL_TO names no"
            " recipient; set both to send email, or neither",
            exit_code=2,
        )
    if recipients and not settings.alerts_smtp_host:
        raise ShopstreamError(
            "SHOPSTREAM_ALERTS_EMAIL_TO is set but SHOPSTREAM_ALERTS_SMTP_HOST is empty;"
            " set both to send email, or neither",
            exit_code=2,
        )
    found: dict[str, Notifier] = {}
    slack_url = settings.alerts_slack_webhook_url.get_secret_value()
    if slack_url:
        found["slack"] = SlackNotifier(slack_url)
    if recipients:
        found["email"] = EmailNotifier(
            settings.alerts_smtp_host,
            settings.alerts_smtp_port,
            starttls=settings.alerts_smtp_starttls,
            user=settings.alerts_smtp_user,
            password=settings.alerts_smtp_password.get_secret_value(),
        )
    routing_key = settings.alerts_pagerduty_routing_key.get_secret_value()
    if routing_key:
        found["pagerduty"] = PagerDutyNotifier(settings.alerts_pagerduty_url, routing_key)
    return found
