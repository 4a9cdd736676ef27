"""The Program form: every setting of the catalogue with its unit and help text; errors
next to their field, nothing saved when one is wrong; a saved change reaches the doors."""

import re

from fidelia.panel.program.fields import LABELS
from fidelia.tenants.setting_help import SETTING_HELP
from tests.panel.support import make_merchant, post, sign_in, tenant_of


def test_every_setting_is_a_field_with_its_unit_and_help(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    page = client.get("/panel/program")
    assert page.status_code == 200
    for key, (unit, help_text) in SETTING_HELP.items():
        assert f'name="{key}"' in page.text, key
        assert f'<label for="f-{key}">' in page.text, key
        assert f"({unit})" in page.text.replace("&#34;", '"'), key
        assert help_text.replace("'", "&#39;") in page.text, key
    assert set(LABELS) == set(SETTING_HELP)  # every setting has a label of its own


def test_errors_stay_next_to_their_field_and_nothing_is_saved(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    answer = post(
        client,
        "/panel/program",
        {"points_per_pin": "7", "pin_lifetime_minutes": "0", "cashback_percent": "abc"},
    )
    assert answer.status_code == 422
    errors = dict(re.findall(r'<small class="error" id="e-([a-z_]+)">([^<]+)</small>', answer.text))
    assert set(errors) == {"pin_lifetime_minutes", "cashback_percent"}
    assert "between 1 and 1440" in errors["pin_lifetime_minutes"]
    assert 'value="7"' in answer.text  # what was typed stays in the form
    tenant = tenant_of(db, a.tenant_id)
    assert tenant.points_per_pin == 1 and tenant.pin_lifetime_minutes == 30  # all or nothing


def test_a_saved_setting_changes_what_a_door_answers(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    door = "/api/v1/integraciones/pin/generar"
    before = client.post(door, headers={"X-API-Key": a.api_key}).json()
    assert before["expires_in"] == 30 * 60
    saved = post(
        client,
        "/panel/program",
        {"pin_lifetime_minutes": "12", "points_per_pin": "3", "min_purchase": "2.50"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert "Program saved." in client.get("/panel/program").text
    after = client.post(door, headers={"X-API-Key": a.api_key}).json()
    assert after["expires_in"] == 12 * 60
    tenant = tenant_of(db, a.tenant_id)
    assert (tenant.points_per_pin, tenant.min_purchase) == (3, 250)


def test_onboarding_steps_are_checked_from_real_data(client, db):
    a = make_merchant(db, "shop-a", locale="en")  # it has an API key already
    sign_in(client, a.owner)
    page = client.get("/panel/onboarding").text
    done = set(re.findall(r'<li class="done" data-step="([a-z_]+)"', page))
    assert done == {"api_key"}
    post(client, "/panel/program", {"points_per_pin": "5"})
    page = client.get("/panel/onboarding").text
    assert set(re.findall(r'<li class="done" data-step="([a-z_]+)"', page)) == {
        "api_key",
        "program",
    }
    assert "2 of 4 steps done." in page
