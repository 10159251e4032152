"""E-mail through the installation's SMTP server (KAPOK_SMTP_*): STARTTLS
and login when configured, a plain-text UTF-8 message whose Message-ID is
the notification's key (the same on every retry). A 4xx answer or a lost
connection is tried again; a 5xx (address refused, login refused) is not.
"""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from .adapters import DeliveryError, Message, Target


def build(target: Target, message: Message, sender: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = target.target
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    domain = sender.rpartition("@")[2] or "kapok.local"
    mail["Message-ID"] = f"<{message.key}@{domain}>"
    mail["Content-Language"] = target.lang
    mail.set_content(message.text)
    return mail


def send(target: Target, message: Message, settings) -> None:
    if not settings.smtp_host:
        raise DeliveryError("no SMTP server configured (KAPOK_SMTP_HOST)", retry=False)
    mail = build(target, message, settings.smtp_from)
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.notify_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(
                    context=ssl.create_default_context(cafile=settings.smtp_ca_file or None)
                )
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            refused = smtp.send_message(mail)
    except smtplib.SMTPRecipientsRefused as e:
        code = min(c for c, _ in e.recipients.values())
        raise DeliveryError(f"recipient refused: {e.recipients}", retry=code < 500) from e
    except smtplib.SMTPResponseException as e:
        raise DeliveryError(f"SMTP {e.smtp_code}: {e.smtp_error!r}", retry=e.smtp_code < 500) from e
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from e
    if refused:
        raise DeliveryError(f"recipient refused: {refused}", retry=False)
