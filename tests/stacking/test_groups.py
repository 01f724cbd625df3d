"""Jobs that differ only in members' numbers share a group; anything else splits them."""

from __future__ import annotations

import pytest

from oodmix.stacking.groups import differing_members, group_jobs, job_numbers, member_paths


@pytest.fixture
def configs(compose_config):
    def make(*jobs: list[str]):
        return [compose_config(*job, run=f"job{i}") for i, job in enumerate(jobs)]

    return make


def test_seeds_betas_alphas_deltas_and_rates_stack(configs) -> None:
    jobs = configs(
        ["seed=0"], ["seed=1", "beta=0.3"], ["mixup.alpha=0.2", "delta=0.7"], ["model.lr=0.003"]
    )
    assert group_jobs(jobs) == [[0, 1, 2, 3]]
    assert differing_members(jobs) == {
        "seed": [0, 1, 0, 0],
        "beta": [1.0, 0.3, 1.0, 1.0],
        "mixup.alpha": [1.0, 1.0, 0.2, 1.0],
        "delta": [0.8, 0.8, 0.7, 0.8],
        "model.lr": [0.01, 0.01, 0.01, 0.003],
    }


def test_numbers_of_the_objective_stack(configs) -> None:
    energy = ["loss=energy", "detector=energy"]
    jobs = configs(energy, [*energy, "loss.margin_in=-8", "loss.weight=0.5"])
    assert group_jobs(jobs) == [[0, 1]]


@pytest.mark.parametrize(
    "other",
    [["loss=ce_kl"], ["data=moons"], ["model.hidden=[16,16]"], ["detector=entropy"],
     ["trainer.max_epochs=4"], ["mixup.pairs=both"], ["model.weight_decay=0.1"],
     ["data.batch_size=64"]],
)  # fmt: skip
def test_anything_else_makes_another_group(configs, other) -> None:
    assert group_jobs(configs([], other, ["seed=5"])) == [[0, 2], [1]]


def test_groups_follow_the_order_of_their_first_job_and_a_size_limit(configs) -> None:
    jobs = configs(["loss=ce"], ["seed=1"], ["loss=ce", "seed=1"], ["seed=2"], ["seed=3"])
    assert group_jobs(jobs) == [[0, 2], [1, 3, 4]]
    assert group_jobs(jobs, max_members=2) == [[0, 2], [1, 3], [4]]


def test_member_paths_include_interpolated_copies_and_run_folders(configs) -> None:
    (cfg,) = configs([])
    paths = member_paths(cfg)
    assert {"seed", "data.seed", "loss.beta", "callbacks.detection.delta", "output_dir",
            "model.optimizer.lr", "callbacks.confidence_map.output_dir"} <= paths  # fmt: skip
    assert "model.hidden[0]" not in paths and "data.batch_size" not in paths


@pytest.mark.parametrize(
    ("numbers", "shown"),
    [
        ([7], "#7"),
        ([0, 1], "#0, #1"),  # two in a row stay listed
        ([2, 3, 4], "#2-#4"),
        (list(range(360)), "#0-#359"),
        ([0, 1, 5, 6, 7, 8, 9, 12], "#0, #1, #5-#9, #12"),
        ([3, 1, 2], "#3, #1, #2"),  # in the given order: only rising runs are ranges
    ],
)
def test_job_numbers_show_runs_of_three_or_more_as_ranges(numbers, shown) -> None:
    assert job_numbers(numbers) == shown


def test_jobs_with_one_override_signature_are_compared_once(configs, monkeypatch) -> None:
    from oodmix.stacking import groups

    jobs = configs(["seed=0", "beta=0.3"], ["seed=1", "beta=3"], ["seed=2", "data=moons"],
                   ["seed=3", "beta=1"], ["seed=4", "data=moons"])  # fmt: skip
    # (compose_config adds the tests' own shorter settings first)
    assert groups.override_signature(jobs[0])[-2:] == ("seed=<member>", "beta=<member>")
    assert groups.override_signature(jobs[2])[-2:] == ("seed=<member>", "data=moons")
    compared = []
    full = groups.shared_config
    monkeypatch.setattr(groups, "shared_config", lambda cfg: compared.append(cfg) or full(cfg))
    assert groups.group_jobs(jobs) == [[0, 1, 3], [2, 4]]
    assert compared == [jobs[0], jobs[2]]


def test_a_signature_masks_only_members_and_numbers_of_the_objective(configs) -> None:
    from oodmix.stacking.groups import override_signature

    (cfg,) = configs(["loss=energy", "detector=energy", "loss.margin_in=-8", "model.lr=0.003",
                      "delta=0.7", "trainer.max_epochs=4"])  # fmt: skip
    assert override_signature(cfg)[-6:] == (
        "loss=energy", "detector=energy", "loss.margin_in=<member>", "model.lr=<member>",
        "delta=<member>", "trainer.max_epochs=4")  # fmt: skip
