"""yaml_texts: many like configs' YAML from one dump, byte for byte OmegaConf.to_yaml's."""

from __future__ import annotations

import random

import pytest
from omegaconf import OmegaConf

from oodmix.stacking.yaml_texts import to_yaml, yaml_texts


def omegaconf_yaml(container):
    return OmegaConf.to_yaml(OmegaConf.create(container))


BASE = {
    "seed": 0,
    "beta": 0.1,
    "name": "ce_kl",
    "flag": True,
    "nothing": None,
    "empty": {},
    "none_list": [],
    "model": {"lr": 0.001, "hidden": [64, 64], "activation": "relu"},
    "output_dir": "outputs/multiruns/2026-12-02/10-00-00/0",
    "overrides": ["seed=0", "beta=0.1"],
    "title": "${loss.name} beta=${beta}",
}

# Values YAML writes in other styles: quoted numbers and words, long text with spaces (folded
# past the line width), several lines, odd characters, floats written with exponents.
ODD_VALUES = [
    "1", "true", "null", "", " leading", "a: b", "- item", "#hash", "x" * 120,
    "word " * 30, "two\nlines", "tab\there", "quote's", 'double"quote', "~", "1e-5",
    1e-5, 1e20, float("inf"), float("-inf"), -0.0, 10**30, False, None, 3, 2.5,
    "ünïcode", "${beta}", "*alias", "&anchor", "@at", "%pct", "?q", "{}", "[]",
]  # fmt: skip


def members(values, key="seed"):
    containers = []
    for value in values:
        container = OmegaConf.to_container(OmegaConf.create(BASE))
        container[key] = value
        container["overrides"] = [f"{key}={value}", "beta=0.1"]
        containers.append(container)
    return containers


def test_one_member_and_none():
    assert yaml_texts([]) == []
    assert yaml_texts([BASE]) == [omegaconf_yaml(BASE)]


def test_to_yaml_is_omegaconfs():
    assert to_yaml(BASE) == omegaconf_yaml(BASE)


def test_members_differing_in_plain_numbers_are_written_as_omegaconf_writes_them():
    containers = members(range(12))
    assert yaml_texts(containers) == [omegaconf_yaml(c) for c in containers]


@pytest.mark.parametrize("key", ["seed", "title", "name"])
def test_values_yaml_writes_in_other_styles(key):
    containers = members([0, *ODD_VALUES], key=key)
    assert yaml_texts(containers) == [omegaconf_yaml(c) for c in containers]


def test_a_long_value_deep_in_the_config_is_folded_as_yaml_folds_it():
    containers = []
    for words in (1, 10, 14, 15, 16, 30):
        container = OmegaConf.to_container(OmegaConf.create(BASE))
        container["model"]["activation"] = "word " * words
        containers.append(container)
    assert yaml_texts(containers) == [omegaconf_yaml(c) for c in containers]


def test_members_of_another_shape_are_dumped_on_their_own():
    other_keys = OmegaConf.to_container(OmegaConf.create(BASE))
    other_keys["extra"] = 1
    longer_list = OmegaConf.to_container(OmegaConf.create(BASE))
    longer_list["model"]["hidden"] = [64, 64, 64]
    nested = OmegaConf.to_container(OmegaConf.create(BASE))
    nested["empty"] = {"now": "filled"}
    containers = [BASE, other_keys, longer_list, nested, {**BASE, "seed": 7}]
    assert yaml_texts(containers) == [omegaconf_yaml(c) for c in containers]


def test_a_value_holding_a_marker_does_not_break_the_others():
    containers = members(["oodmix-marker-000001", "oodmix-marker-000000", "plain"], key="title")
    assert yaml_texts(containers) == [omegaconf_yaml(c) for c in containers]


def test_random_members_of_a_random_config():
    rng = random.Random(0)
    pool = [*ODD_VALUES, *range(-3, 300), 0.1, 0.30000000000000004]
    for _ in range(20):
        base = OmegaConf.to_container(OmegaConf.create(BASE))
        paths = [("seed",), ("beta",), ("model", "lr"), ("model", "hidden", 1), ("overrides", 0)]
        chosen = rng.sample(paths, rng.randint(1, len(paths)))
        containers = []
        for _ in range(rng.randint(2, 6)):
            container = OmegaConf.to_container(OmegaConf.create(base))
            for path in chosen:
                node = container
                for part in path[:-1]:
                    node = node[part]
                node[path[-1]] = rng.choice(pool)
            containers.append(container)
        assert yaml_texts(containers) == [omegaconf_yaml(c) for c in containers]


def test_like_members_are_dumped_once(monkeypatch):
    import oodmix.stacking.yaml_texts as module

    dumped = []
    real = module.to_yaml
    monkeypatch.setattr(module, "to_yaml", lambda c: dumped.append(c) or real(c))
    containers = members(range(50))
    texts = yaml_texts(containers)
    whole = [c for c in dumped if isinstance(c, dict)]
    assert len(whole) == 1  # the template; each member's values are written alone
    monkeypatch.undo()
    assert texts == [omegaconf_yaml(c) for c in containers]
