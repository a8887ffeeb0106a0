"""Configuration: precedence, validation with named keys, YAML parsing of overrides."""

from __future__ import annotations

import pytest

from benchmark import config
from benchmark.errors import UserError
from methods.fixmatch import FixMatch
from methods.supervised import Supervised


def test_precedence_preset_method_file_set(tmp_path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("optim:\n  lr: 0.5\nmethod:\n  threshold: 0.8\n")
    resolved = config.resolve("demo", FixMatch.Params, [user], ["optim.lr=0.25", "data.scale_range=[0.5, 1.0]"])
    assert resolved.run.data.crop_size == 96  # preset
    assert resolved.run.optim.lr == 0.25  # --set beats the file
    assert resolved.method_params.threshold == 0.8  # file beats the preset's method_params
    assert resolved.run.data.scale_range == (0.5, 1.0)
    assert resolved.sources == ["preset:demo", f"file:{user}", "set:optim.lr=0.25", "set:data.scale_range=[0.5, 1.0]"]


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(UserError, match=r"unknown config key 'optim\.learning_rate'.*optim\.lr"):
        config.resolve("demo", Supervised.Params, overrides=["optim.learning_rate=0.1"])
    with pytest.raises(UserError, match=r"unknown config key 'method\.treshold'; valid keys here: method\.threshold"):
        config.resolve("demo", FixMatch.Params, overrides=["method.treshold=0.9"])


def test_a_value_where_a_section_belongs_is_one_message() -> None:
    with pytest.raises(UserError, match=r"optim must be a mapping of keys to values, got 5 \(set one key: "
                                        r"--set optim\.KEY=VALUE\)"):
        config.resolve("demo", Supervised.Params, overrides=["optim=5"])


def test_wrong_types_and_choices_are_refused() -> None:
    with pytest.raises(UserError, match="data.crop_size must be an integer or a list, got 'big'"):
        config.resolve("demo", Supervised.Params, overrides=["data.crop_size=big"])
    with pytest.raises(UserError, match="trainer.amp must be one of"):
        config.resolve("demo", Supervised.Params, overrides=["trainer.amp=fp8"])
    assert config.resolve("demo", Supervised.Params, overrides=["trainer.amp=off"]).run.trainer.amp == "off"
    assert config.resolve("demo", Supervised.Params, overrides=["trainer.sync_bn=off"]).run.trainer.sync_bn is False


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(UserError, match="available presets: .*demo"):
        config.resolve("nope", Supervised.Params)


def test_digest_changes_with_any_setting() -> None:
    a = config.resolve("demo", FixMatch.Params)
    b = config.resolve("demo", FixMatch.Params, overrides=["method.threshold=0.9"])
    assert a.digest() == config.resolve("demo", FixMatch.Params).digest() != b.digest()


def test_digest_hashes_every_setting_but_on_nonfinite() -> None:
    import hashlib
    import json

    skip = config.resolve("demo", FixMatch.Params, overrides=["trainer.on_nonfinite=skip"])
    data = skip.as_dict()
    data["trainer"]["on_nonfinite"] = "stop"
    assert skip.digest() == hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    assert skip.digest() == config.resolve("demo", FixMatch.Params).digest()
    off = config.resolve("demo", FixMatch.Params, overrides=["trainer.eval_amp=off"])
    assert off.digest() != config.resolve("demo", FixMatch.Params).digest()
