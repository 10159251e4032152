"""A gas leak on a virtual meter, with nobody at the dashboard: the real
firmware raises it, the gateway forwards it, the cloud's sender (inside
`kapok cloud serve`) e-mails the person on duty through a real SMTP server
(STARTTLS, login) and POSTs the signed webhook, within seconds."""

import time

import pytest

from tests.cloud.notifications.peers import HookServer, Mailbox

from .helpers import Meter, Stack, until


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    with Mailbox(tmp_path_factory.mktemp("smtp")) as box, HookServer(secret="e2e-hook") as hook:
        yield box, hook


@pytest.fixture(scope="module")
def stack(database, tmp_path_factory, peers):
    box, _ = peers
    env = {
        "KAPOK_SMTP_HOST": "127.0.0.1",
        "KAPOK_SMTP_PORT": str(box.port),
        "KAPOK_SMTP_STARTTLS": "1",
        "KAPOK_SMTP_CA_FILE": str(box.cert),
        "KAPOK_SMTP_USER": box.user,
        "KAPOK_SMTP_PASSWORD": box.password,
        "KAPOK_SMTP_FROM": "alarms@kapok.example",
    }
    s = Stack(tmp_path_factory.mktemp("stack"), database, env=env)
    try:
        s.set_up()
        yield s
    finally:
        s.tear_down()


def test_a_gas_leak_reaches_the_on_duty_mailbox_and_the_webhook_within_seconds(
    stack, bundles, tmp_path_factory, peers
):
    box, hook = peers
    admin = stack.admin
    duty = admin.post(
        "/channels",
        json={"community": stack.community, "kind": "email", "target": "duty@kapok.example"},
    )
    admin.post(
        "/duty-shifts",
        json={
            "community": stack.community,
            "channel": duty["id"],
            "weekdays": list(range(7)),
            "start": "00:00",
            "end": "00:00",
        },
    )
    admin.post(
        "/channels",
        json={
            "community": stack.community,
            "kind": "webhook",
            "target": hook.url,
            "secret": "e2e-hook",
        },
    )
    meter = Meter(
        stack,
        tmp_path_factory.mktemp("boards"),
        "gm-e2e-n",
        unit=stack.units[0],
        bundle=bundles["1"],
    )
    meter.start()
    try:
        until(lambda: meter.readings("valve"), "the meter's first reading", timeout=90)
        t0 = time.time()
        meter.board.set({"methane": 30})  # %LEL: a leak
        until(box.arrived.is_set, "the on-duty person's e-mail", timeout=60)
        mailed = time.time() - t0
        until(hook.arrived.is_set, "the webhook", timeout=30)
        hooked = time.time() - t0
        print(f"leak → e-mail {mailed:.2f} s, → webhook {hooked:.2f} s")  # (pytest -s)
        [mail] = box.messages
        assert mail["to"] == ["duty@kapok.example"] and mail["tls"]
        assert "燃气泄漏" in mail["mail"]["Subject"] and "木棉花园 E2E" in mail["mail"]["Subject"]
        assert meter.device in mail["mail"].get_content()
        [doc] = [h["body"] for h in hook.received]
        assert (doc["type"], doc["alarm"]["kind"], doc["alarm"]["device"]) == (
            "alarm.opened",
            "gas.leak",
            meter.device,
        )
        # generous bounds for a loaded CI machine; the note gives measured figures
        assert mailed < 30 and hooked < 30
    finally:
        meter.stop()
