"""Each rule is stated once, by its owner: no key's allowed values are written in two modules."""

from __future__ import annotations

import collections
import re
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "oodmix"

# A statement of what a key allows: a call of oodmix.allowed's words with the key as written
# (`integer_at_least("data.batch_size", ...)`), or a refusal written out
# (`f"delta={...} is not allowed`). Calls of a shared statement (check_weight) are uses of it.
CALL = re.compile(
    r"\b(?:require|refusal|integer_at_least|optional_integer_at_least|number_at_least|"
    r"number_above|finite_number|boolean|one_of|point)\(\s*f?\"([^\"{]+)\""
)
WRITTEN = re.compile(r"f?\"([a-z_][\w.\[\]]*)=\{[^}]*\} is not allowed")


def statements() -> dict[str, set[str]]:
    """Each key -> the modules that state what it allows."""
    found = collections.defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for pattern in (CALL, WRITTEN):
            for match in pattern.finditer(text):
                found[match.group(1)].add(str(path.relative_to(PACKAGE)))
    return found


def test_the_scan_finds_the_statements_it_should() -> None:
    """The scan is not blind: known owners are found where they are."""
    found = statements()
    assert found["data.batch_size"] == {"data/datamodule.py"}
    assert found["delta"] == {"detectors/thresholds.py"}
    assert found["loss.temperature"] == {"losses/max_entropy.py"}
    assert found["trainer.max_epochs"] == {"runs/build.py"}
    assert len(found) > 30


def test_no_key_is_stated_in_two_modules() -> None:
    twice = {key: sorted(modules) for key, modules in statements().items() if len(modules) > 1}
    assert not twice


def test_the_config_package_states_no_range() -> None:
    """oodmix/config/ states the run folders only; ranges belong to the classes."""
    owned = {
        key
        for key, modules in statements().items()
        if any(m.startswith("config/") for m in modules)
    }
    assert owned <= {"ckpt_path", "hydra.run.dir", "hydra.sweep.dir"}
