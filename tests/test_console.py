"""What a run shows on the terminal: the progress bar (root knob `progress`) and the results
table (root knob `quiet`)."""

from __future__ import annotations

import io

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

import oodmix.runs.build as build_module
import oodmix.runs.job as job_module
from oodmix.callbacks.progress import RichProgress, TQDMProgress
from oodmix.config.errors import ConfigError
from oodmix.console import choose_progress, is_quiet, stderr_is_terminal


@pytest.mark.parametrize(
    ("terminal", "quiet", "expected"),
    [
        (True, False, "rich"),  # an interactive run
        (False, False, "none"),  # a log file, a pipe, CI, a SLURM job
        (True, True, "none"),  # a quiet run (quiet=true, or a multirun job)
        (False, True, "none"),
    ],
)
def test_auto_shows_a_bar_on_a_terminal_unless_quiet(terminal, quiet, expected) -> None:
    assert choose_progress("auto", quiet=quiet, terminal=terminal) == expected


@pytest.mark.parametrize("choice", ["rich", "tqdm", "none"])
def test_a_named_bar_is_shown_whatever_the_terminal(choice) -> None:
    for terminal in (True, False):
        for quiet in (True, False):
            assert choose_progress(choice, quiet=quiet, terminal=terminal) == choice


def test_quiet_auto_is_quiet_in_a_multirun_job_only() -> None:
    assert is_quiet("auto", multirun=True) is True
    assert is_quiet("auto", multirun=False) is False
    for multirun in (True, False):
        assert is_quiet(True, multirun=multirun) is True
        assert is_quiet(False, multirun=multirun) is False


@pytest.mark.parametrize(
    ("progress", "message"),
    [
        (
            "fancy",
            "progress='fancy' is not allowed: progress must be one of auto, rich, tqdm, none",
        ),
        (True, "progress=true is not allowed"),
    ],
)
def test_other_progress_values_are_refused_in_one_line(progress, message) -> None:
    with pytest.raises(ConfigError, match=message):
        choose_progress(progress, quiet=False, terminal=True)


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        super().isatty()  # a closed stream raises ValueError, as a closed file does
        return self.tty


def test_the_terminal_is_stderr(monkeypatch) -> None:
    monkeypatch.setattr("sys.stderr", _Stream(tty=True))
    assert stderr_is_terminal()
    monkeypatch.setattr("sys.stderr", _Stream(tty=False))
    assert not stderr_is_terminal()
    closed = _Stream(tty=True)
    closed.close()
    monkeypatch.setattr("sys.stderr", closed)
    assert not stderr_is_terminal()


@pytest.mark.parametrize(
    ("progress", "bar"), [("rich", RichProgress), ("tqdm", TQDMProgress), ("none", None)]
)
def test_the_trainer_gets_the_chosen_bar(compose_config, progress, bar) -> None:
    trainer = build_module.build_run(compose_config(f"progress={progress}")).trainer
    if bar is None:
        assert trainer.progress_bar_callback is None
    else:
        assert type(trainer.progress_bar_callback) is bar


def test_auto_shows_no_bar_when_stderr_is_not_a_terminal(compose_config) -> None:
    """As under pytest, in a log file or in CI: the bar costs nothing, it is not there."""
    assert not stderr_is_terminal()
    assert build_module.build_run(compose_config()).trainer.progress_bar_callback is None


def test_a_run_with_the_rich_bar_completes(compose_config, capsys) -> None:
    cfg = compose_config("progress=rich", "trainer.max_epochs=2", "plots=false", "logger=none")
    metrics = job_module.train(cfg)
    assert 0.0 <= metrics["test/f1"] <= 1.0
    captured = capsys.readouterr()
    assert "Epoch 1/1" in captured.err and "val/f1" in captured.err  # the bar, on stderr
    assert "Epoch" not in captured.out  # stdout is for the results table


FAKE_METRICS = {"test/f1": 0.5, "val/f1": 0.25, "loss": "ce", "detector": "msp", "seed": 0}


@pytest.mark.parametrize(
    ("mode", "quiet", "printed"),
    [
        (RunMode.RUN, "auto", True),
        (RunMode.RUN, "true", False),
        (RunMode.MULTIRUN, "auto", False),  # the sweep's report prints one table at the end
        (RunMode.MULTIRUN, "false", True),
    ],
)
def test_the_results_table_is_printed_unless_quiet(
    compose_config, monkeypatch, capsys, mode, quiet, printed
) -> None:
    cfg = compose_config(f"quiet={quiet}")
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)
    monkeypatch.setattr(job_module, "train", lambda cfg: dict(FAKE_METRICS))
    assert job_module.train_and_print(cfg) == 0.25
    out = capsys.readouterr().out
    assert ("F1 (ID positive)" in out) is printed
    if not printed:
        assert out == ""
