"""Fixtures of the notification tests: the real peers, and the app's
settings pointing at them."""

import pytest

from kapok.cloud.notifications.sender import deliver_due

from .peers import HookServer, Mailbox


@pytest.fixture
def mailbox(tmp_path):
    with Mailbox(tmp_path) as box:
        yield box


@pytest.fixture
def hook():
    with HookServer(secret="hook-secret-1") as server:
        yield server


@pytest.fixture
def settings(settings, mailbox):
    """The cloud's settings with its SMTP server (STARTTLS and a login)."""
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
            "smtp_starttls": True,
            "smtp_ca_file": str(mailbox.cert),
            "smtp_user": mailbox.user,
            "smtp_password": mailbox.password,
            "smtp_from": "alarms@kapok.example",
            "public_url": "https://kapok.example",
            "notify_backoff_seconds": 30,
            "notify_max_attempts": 3,
        }
    )


@pytest.fixture
def deliver(app, clock):
    """Run sender rounds at the app's clock until nothing due is left."""

    def run(now: float | None = None) -> int:
        total = 0
        while n := deliver_due(app.state.sessions, app.state.settings, now or clock()):
            total += n
        return total

    return run
