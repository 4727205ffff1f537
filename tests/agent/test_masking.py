"""The Masker hides sensitive values in log lines and in the plan JSON."""

from __future__ import annotations

import json

from xcloudflow.agent.masking import MASK, Masker


def test_masks_every_occurrence_and_ignores_empty_values() -> None:
    masker = Masker(["s3cret", "", "s3cret-longer"])
    assert masker.mask("a s3cret and s3cret-longer, s3cret") == "a *** and ***, ***"
    assert masker.mask("nothing here") == "nothing here"
    assert not Masker(["", ""])
    assert Masker([""]).mask("text") == "text"


def test_masks_json_escaped_forms() -> None:
    secret = 'pa"ss\\word\nline2'
    masker = Masker([secret])
    line = json.dumps({"password": secret})
    assert secret not in masker.mask(line)
    assert json.dumps(secret)[1:-1] not in masker.mask(line)
    assert masker.mask(line) == '{"password": "***"}'
    unicode_secret = "mot-de-passe-é"
    assert Masker([unicode_secret]).mask(json.dumps(unicode_secret)) == '"***"'


def test_mask_value_masks_strings_keys_and_scalars() -> None:
    masker = Masker(["tok", "5432"])
    value = {"a": "x-tok-y", "tok": 1, "list": ["tok", 5432, 5433, True, None]}
    assert masker.mask_value(value) == {"a": "x-***-y", MASK: 1, "list": [MASK, MASK, 5433, True, None]}


def test_mask_plan_uses_terraform_sensitivity_markers() -> None:
    plan = {
        "variables": {"password": {"value": {"nested": "x"}}, "region": {"value": "eu"}},
        "configuration": {"root_module": {"variables": {"password": {"sensitive": True}, "region": {}}}},
        "planned_values": {
            "outputs": {"pw": {"sensitive": True, "value": 42}, "name": {"sensitive": False, "value": "n"}},
            "root_module": {
                "resources": [
                    {
                        "values": {"a": "visible", "b": "hidden", "l": [1, 2]},
                        "sensitive_values": {"b": True, "l": [False, True]},
                    }
                ],
                "child_modules": [{"resources": [{"values": {"k": "v"}, "sensitive_values": {"k": True}}]}],
            },
        },
        "prior_state": {"values": {"outputs": {"pw": {"sensitive": True, "value": "old"}}}},
        "resource_changes": [
            {
                "address": "x",
                "change": {
                    "actions": ["update"],
                    "before": {"k": "old", "m": {"n": "deep"}},
                    "after": {"k": "new", "m": {"n": "deeper"}},
                    "before_sensitive": {"k": True},
                    "after_sensitive": {"m": {"n": True}},
                },
            }
        ],
        "output_changes": {
            "pw": {"actions": ["create"], "before": None, "after": "p", "after_sensitive": True}
        },
        "free_text": "mentions the-secret inline",
    }
    masked = Masker(["the-secret"]).mask_plan(plan)
    assert masked["variables"]["password"]["value"] == MASK
    assert masked["variables"]["region"]["value"] == "eu"
    assert masked["planned_values"]["outputs"]["pw"]["value"] == MASK
    assert masked["planned_values"]["outputs"]["name"]["value"] == "n"
    res = masked["planned_values"]["root_module"]["resources"][0]["values"]
    assert res == {"a": "visible", "b": MASK, "l": [1, MASK]}
    assert masked["planned_values"]["root_module"]["child_modules"][0]["resources"][0]["values"] == {
        "k": MASK
    }
    assert masked["prior_state"]["values"]["outputs"]["pw"]["value"] == MASK
    change = masked["resource_changes"][0]["change"]
    assert change["before"] == {"k": MASK, "m": {"n": "deep"}}
    assert change["after"] == {"k": "new", "m": {"n": MASK}}
    assert masked["output_changes"]["pw"]["after"] == MASK
    assert masked["output_changes"]["pw"]["before"] is None
    assert masked["free_text"] == "mentions *** inline"
    assert plan["variables"]["password"]["value"] == {"nested": "x"}  # the input is left alone
