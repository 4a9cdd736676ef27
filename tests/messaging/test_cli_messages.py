"""The issue 13 commands as operators run them (a real subprocess on SQLite): merchant
settings, template mapping, voucher rules, and the jobs for cron."""

import json

from tests.test_cli import create_tenant, fidelia, one_json, show, sqlite_url  # noqa: F401


def test_settings_templates_rules_and_jobs(fidelia):  # noqa: F811
    create_tenant(fidelia, "loja", "--currency", "BRL", "--locale", "pt_BR")
    for key, value in (
        ("points_validity_days", "180"),
        ("expiry_reminder_days", "10"),
        ("come_back_days", "45"),
        ("message_cap", "3"),
        ("message_cap_days", "30"),
        ("message_benefit_earned", "true"),
        ("message_come_back", "yes"),
    ):
        fidelia("tenant", "set", "loja", key, value)
    shown = show(fidelia, "loja")
    assert {k: shown[k] for k in ("points_validity_days", "come_back_days", "message_cap")} == {
        "points_validity_days": 180,
        "come_back_days": 45,
        "message_cap": 3,
    }
    assert shown["message_benefit_earned"] is True and shown["message_voucher_issued"] is False
    refused = fidelia("tenant", "set", "loja", "--", "points_validity_days", "-1", ok=False)
    assert refused.returncode == 1 and "points_validity_days" in refused.stderr
    assert "points_validity_days (days (0: never))" in fidelia("tenant", "set", "--help").stdout

    mapped = one_json(
        fidelia(
            "message", "template", "set", "--tenant", "loja", "--event", "benefit_earned",
            "--name", "beneficio", "--language", "pt_BR", "--params", "balance,merchant", "--json",
        )
    )  # fmt: skip
    assert mapped == {
        "event": "benefit_earned",
        "name": "beneficio",
        "language": "pt_BR",
        "params": "balance,merchant",
    }
    listed = fidelia("message", "template", "list", "--tenant", "loja", "--json").stdout
    assert [json.loads(line)["name"] for line in listed.splitlines()] == ["beneficio"]
    bad = fidelia(
        "message", "template", "set", "--tenant", "loja", "--event", "come_back",
        "--name", "x", "--language", "pt_BR", "--params", "code", ok=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "unknown: code" in bad.stderr

    made = one_json(
        fidelia(
            "voucher", "rule", "create", "--tenant", "loja", "--every-spend", "200",
            "--value", "10", "--json",
        )
    )  # fmt: skip
    assert made["kind"] == "spend" and made["every"] == "200.00" and made["value"] == "10.00"
    fidelia(
        "voucher", "rule", "create", "--tenant", "loja", "--every-purchases", "5", "--once",
        "--value", "0", "--benefit", "Um café",
    )  # fmt: skip
    rules = fidelia("voucher", "rule", "list", "--tenant", "loja", "--json").stdout.splitlines()
    assert [(json.loads(r)["kind"], json.loads(r)["repeat"]) for r in rules] == [
        ("spend", True),
        ("purchases", False),
    ]
    both = fidelia(
        "voucher", "rule", "create", "--tenant", "loja", "--value", "1", ok=False
    )  # fmt: skip
    assert both.returncode == 1 and "exactly one" in both.stderr

    assert fidelia("jobs", "expire").stdout.strip() == "0 lot(s) expired"
    assert fidelia("jobs", "messages").stdout.strip() == "0 points_expiring, 0 come_back"
    assert fidelia("check").returncode == 0
