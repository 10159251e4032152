# Runs inside MicroPython after check_apps.py's helpers (the test joins the
# two scripts): the thresholds.set commands the cloud signed for a
# community's rules, run by a water-quality node and a gas meter booted as
# on a board. PARAMS["rules"]: {"wq": hex, "gas": hex, "cloud_pub": hex}.
# Last line: "ok rules <n>".
# ruff: noqa: F821  (PARAMS, boot, check, ... come from check_apps.py)


async def rules_main():
    R = PARAMS["rules"]
    PARAMS["cloud_pub"] = R["cloud_pub"]
    PARAMS["device"] = "wq-a1"
    node, board, world = boot("wq", "water-quality", "water_quality", {})
    app = node.app
    got = await node.commands.run(h(R["wq"]))
    check(got[1] == messages.OK, "water-quality thresholds.set: " + str(got))
    check(app.rules.limits["turb"] == (None, 3.0), "the community's 3 NTU")
    check(app.rules.limits["ph"] == (6.5, 8.5), "pH as GB 5749")
    world.values["water.turb"] = 2.0
    for _ in range(5):
        app.check()
    check(node.outbox.alarms == 0, "2 NTU is inside 3 NTU: no quality.turb")
    world.values["water.turb"] = 3.5
    for _ in range(5):
        app.check()
    check(node.outbox.alarms == 1, "3.5 NTU: quality.turb")
    # kept across a reboot
    node = Node(board)
    check(node.app.rules.limits["turb"] == (None, 3.0), "limits kept in the config")

    PARAMS["device"] = "gm-a1"
    node, board, world = boot(
        "gas",
        "gas-meter",
        "meter",
        {"methane": {"warmup_s": 0}, "battery": True},
        {"meter.vol": 100.0},
        {"cjt188": {"type": 0x30}},
    )
    got = await node.commands.run(h(R["gas"]))
    check(got[1] == messages.OK, "gas meter thresholds.set: " + str(got))
    check(node.app.continuous_s == 2 * 3600, "continuous flow after 2 h")
    check(node.app.rules.limits["bat"] == (3.1, None), "battery level 3.1 V")
    node = Node(board)
    check(node.app.continuous_s == 2 * 3600, "continuous_h kept in the config")
    check(node.app.rules.limits["bat"] == (3.1, None), "battery level kept")
    print("ok rules " + str(checks))
