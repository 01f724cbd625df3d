"""Where does mixup help? ce_kl_mixup against ce_kl, job by job, over beta and mixup alpha.

`python -m oodmix.reporting.mixup_gain MIXUP_SWEEP BASELINE_SWEEP [--out DIR]` reads two multirun
folders, one of `loss=ce_kl_mixup` over beta, mixup.alpha and seeds and one of `loss=ce_kl` over
the same betas and seeds, and writes mixup_gain.md, mixup_gain.csv and mixup_gain.png into DIR
(by default the folder that holds both sweeps).

Pairs. Each finished ce_kl_mixup job (beta b, alpha a, seed s) is paired with the finished ce_kl
job of the same beta b and seed s. The same seed means the same data (every split is drawn
from the seed) and the same initial weights (the network is built right after seeding, and
the objective draws no random numbers when it is built), so a pair differs only in what
mixup changes in training, and its difference is free of the seed-to-seed spread that an
unpaired comparison of two means would carry. One ce_kl job serves as the partner of every
alpha of its (beta, seed).

Statistics, per pair and metric m (`test/f1`, the F1 at the fixed threshold delta, and
`test/f1_tuned`, the F1 at the threshold tuned on validation data):

    gain = m(ce_kl_mixup job) - m(ce_kl job)

and per (beta, alpha) cell, over its n seeds with gains g_1, ..., g_n:

    mean gain = (g_1 + ... + g_n) / n
    SEM       = s / sqrt(n),  s = sqrt(sum (g_i - mean)^2 / (n - 1))  (sample std; none for n = 1)
    share won = #{i : g_i > 0} / n

A tie (g_i = 0: both jobs scored the same F1) counts as not won: the share is of seeds on which
mixup did strictly better.

Jobs that failed (no metrics.json, or a failure.json) are skipped and listed with their reason;
finished jobs without a partner are listed too. Nothing is dropped silently: mixup_gain.md says
how many of each there were.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from oodmix.files import save_figure_atomic, write_text_atomic
from oodmix.reporting.aggregate import REPLICATE_KEY, swept_keys
from oodmix.reporting.jobs import Job, load_jobs
from oodmix.reporting.tables import mean_std

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PROG = "python -m oodmix.reporting.mixup_gain"
MIXUP_LOSS = "ce_kl_mixup"
BASELINE_LOSS = "ce_kl"
BETA, ALPHA = "beta", "mixup.alpha"
#: The metrics compared, and what each one's threshold is.
METRICS = {
    "test/f1": "at the fixed threshold delta",
    "test/f1_tuned": "at the threshold tuned on validation data",
}
#: Overrides that change what a run writes or prints, not what it learns: sweeps that differ
#: in them still pair.
OUTPUT_ONLY = frozenset({"plots", "logger", "progress", "quiet"})
OUTPUT_NAME = "mixup_gain"


@dataclass(frozen=True)
class Pair:
    """A ce_kl_mixup job and the ce_kl job of its beta and seed."""

    beta: float
    alpha: float
    seed: int
    mixup: Job
    baseline: Job

    def gain(self, metric: str) -> float | None:
        """metric(ce_kl_mixup) - metric(ce_kl); None when either job lacks the metric."""
        with_mixup, without = _value(self.mixup, metric), _value(self.baseline, metric)
        if with_mixup is None or without is None:
            return None
        return with_mixup - without


@dataclass
class Cell:
    """The gains of one (beta, alpha) cell for one metric, one per seed."""

    beta: float
    alpha: float
    metric: str
    gains: list[float]

    @property
    def n_seeds(self) -> int:
        return len(self.gains)

    @property
    def mean_gain(self) -> float:
        return statistics.fmean(self.gains) if self.gains else math.nan

    @property
    def sem(self) -> float:
        """Standard error of the mean gain: sample std (n - 1) / sqrt(n); NaN below 2 seeds."""
        n = len(self.gains)
        return statistics.stdev(self.gains) / math.sqrt(n) if n > 1 else math.nan

    @property
    def wins(self) -> int:
        """Seeds on which mixup did strictly better (a tie is not a win)."""
        return sum(gain > 0 for gain in self.gains)

    @property
    def share_won(self) -> float:
        return self.wins / len(self.gains) if self.gains else math.nan


@dataclass
class Study:
    """Two sweeps read, paired and summarised (`pair_sweeps`)."""

    mixup_dir: Path
    baseline_dir: Path
    mixup_jobs: list[Job]
    baseline_jobs: list[Job]
    pairs: list[Pair]
    #: Lines naming each failed job of either sweep and its reason.
    failed: list[str] = field(default_factory=list)
    #: Lines naming each finished job that has no partner, and why.
    unpaired: list[str] = field(default_factory=list)

    @property
    def betas(self) -> list[float]:
        return sorted({pair.beta for pair in self.pairs})

    @property
    def alphas(self) -> list[float]:
        return sorted({pair.alpha for pair in self.pairs})

    @property
    def seeds(self) -> list[int]:
        return sorted({pair.seed for pair in self.pairs})

    def cells(self, metric: str) -> list[Cell]:
        """One Cell per (beta, alpha) that has at least one pair with the metric, in order."""
        gains: dict[tuple[float, float], list[float]] = {}
        for pair in sorted(self.pairs, key=lambda p: (p.beta, p.alpha, p.seed)):
            gain = pair.gain(metric)
            if gain is not None:
                gains.setdefault((pair.beta, pair.alpha), []).append(gain)
        return [Cell(beta, alpha, metric, values) for (beta, alpha), values in gains.items()]

    def baseline_values(self, beta: float, metric: str) -> list[float]:
        """`metric` of every finished ce_kl job of this beta (paired or not)."""
        return [
            value
            for job in self.baseline_jobs
            if job.ok and _number(job, BETA) == beta
            for value in [_value(job, metric)]
            if value is not None
        ]


# --- reading and pairing ---------------------------------------------------------------------


def _value(job: Job, metric: str) -> float | None:
    """A finite number from the job's metrics.json, else None."""
    value = (job.metrics or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _config_value(job: Job, filename: str, key: str) -> Any:
    """`key` in <job>/.hydra/<filename>, or None when the file or the key is missing."""
    path = job.path / ".hydra" / filename
    if not path.is_file():
        return None
    return OmegaConf.select(OmegaConf.load(path), key, default=None)


def _setting(job: Job, key: str) -> str | None:
    """What the job ran with: its override, else (a setting left at its default is not among
    the overrides) Hydra's record of its config-group choice (`data`, `trainer`, ...) or the
    value in its resolved config."""
    if key in job.overrides:
        return job.overrides[key]
    value = _config_value(job, "hydra.yaml", f"hydra.runtime.choices.{key}")
    if value is None:
        value = _config_value(job, "config.yaml", key)
    return None if value is None else str(value)


def _number(job: Job, key: str) -> float:
    """A numeric setting as a float, so that beta=1 and beta=1.0 are the same beta."""
    text = _setting(job, key)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(
            f"job {job.path} has no numeric {key} (found {text!r}); it cannot be paired"
        ) from None


def _seed(job: Job) -> int:
    seed = _number(job, REPLICATE_KEY)
    if not seed.is_integer():
        raise ValueError(f"job {job.path} has seed={seed:g}, not a whole number")
    return int(seed)


def job_loss(job: Job) -> str | None:
    """The objective a job trained: its `loss=` override, else the one its metrics.json or
    Hydra's record of the config-group choices names (a sweep that left loss at its default)."""
    loss = job.overrides.get("loss") or (job.metrics or {}).get("loss")
    if loss is None:
        loss = _config_value(job, "hydra.yaml", "hydra.runtime.choices.loss")
    return None if loss is None else str(loss)


def _fmt(value: float) -> str:
    """0.03 -> '0.03', 1.0 -> '1': numbers as they are typed on the command line."""
    return f"{value:g}"


def _describe(job: Job, keys: Iterable[str]) -> str:
    return " ".join(f"{key}={_setting(job, key)}" for key in keys)


def load_sweep(sweep_dir: Path, loss: str, other_loss: str) -> list[Job]:
    """The jobs of a multirun folder, after checking that every one of them trained `loss`."""
    jobs = load_jobs(sweep_dir)  # FileNotFoundError when it is not a folder
    if not jobs:
        raise ValueError(
            f"{sweep_dir} is not a multirun folder: it holds no job folders "
            "(<n>/.hydra/overrides.yaml)"
        )
    found = {job_loss(job) or "(unknown)" for job in jobs}
    if found != {loss}:
        hint = " (are the two folders swapped?)" if found == {other_loss} else ""
        raise ValueError(
            f"{sweep_dir} is a sweep of loss={','.join(sorted(found))}, not of loss={loss}{hint}"
        )
    return jobs


def _check_swept(sweep_dir: Path, jobs: list[Job], allowed: set[str]) -> None:
    """Only beta (and for the mixup sweep, alpha) may vary besides the seed: anything else
    would be averaged into the cells as if it were another seed."""
    extra = [key for key in swept_keys(jobs) if key not in allowed | OUTPUT_ONLY]
    if extra:
        raise ValueError(
            f"{sweep_dir} also varies {', '.join(extra)}; the study compares over "
            f"{', '.join(sorted(allowed))} and seeds only: run one pair of sweeps per value"
        )


def _compared_keys(job: Job) -> set[str]:
    """The overridden keys that must agree for two jobs to be a fair pair: all but the study's
    own keys, settings of mixup itself and output-only switches."""
    return {
        key
        for key in job.overrides
        if key not in {"loss", BETA, REPLICATE_KEY, *OUTPUT_ONLY} and not key.startswith("mixup.")
    }


def _check_same_settings(study: Study) -> None:
    """A pair measures what mixup does only if everything else about its two runs is the same:
    a sweep with trainer.max_epochs=2 does not pair with one of 50 epochs. A key overridden in
    one sweep only is compared with the other sweep's default (trainer.max_epochs=50 agrees
    with a sweep that left it at 50). Nothing but beta, alpha and the seed varies within a
    sweep (`_check_swept`), so the first job of each stands for all."""
    mine, theirs = study.mixup_jobs[0], study.baseline_jobs[0]
    differing = [
        key
        for key in sorted(_compared_keys(mine) | _compared_keys(theirs))
        if _setting(mine, key) != _setting(theirs, key)
    ]
    if differing:
        shown = "; ".join(
            f"{key}={_setting(mine, key) or '(unset)'} vs {_setting(theirs, key) or '(unset)'}"
            for key in differing
        )
        raise ValueError(
            f"the two sweeps were run with different settings ({shown}); a pair needs the same "
            "settings apart from loss and mixup.*"
        )


def _index(
    jobs: list[Job], sweep_dir: Path, key: Callable[[Job], tuple], keys: list[str]
) -> dict[tuple, Job]:
    """Jobs by `key(job)`; two jobs with the same key (a seed typed twice) cannot both pair."""
    index: dict[tuple, Job] = {}
    for job in jobs:
        k = key(job)
        if k in index:
            raise ValueError(
                f"jobs {index[k].name} and {job.name} of {sweep_dir} both have "
                f"{_describe(job, keys)}: each must be unique"
            )
        index[k] = job
    return index


def pair_sweeps(mixup_dir: Path, baseline_dir: Path) -> Study:
    """Read both sweeps, check them, and pair every finished ce_kl_mixup job with the finished
    ce_kl job of its beta and seed. Raises ValueError (FileNotFoundError for a missing folder)
    with a one-line reason when the folders cannot be compared or give no pair."""
    mixup_dir, baseline_dir = Path(mixup_dir), Path(baseline_dir)
    if mixup_dir.resolve() == baseline_dir.resolve():
        raise ValueError(
            f"{mixup_dir} is given twice; give the {MIXUP_LOSS} sweep, then the "
            f"{BASELINE_LOSS} sweep"
        )
    mixup_jobs = load_sweep(mixup_dir, MIXUP_LOSS, BASELINE_LOSS)
    baseline_jobs = load_sweep(baseline_dir, BASELINE_LOSS, MIXUP_LOSS)
    _check_swept(mixup_dir, mixup_jobs, {BETA, ALPHA})
    _check_swept(baseline_dir, baseline_jobs, {BETA})
    study = Study(mixup_dir, baseline_dir, mixup_jobs, baseline_jobs, pairs=[])
    _check_same_settings(study)

    mixup_keys = [BETA, ALPHA, REPLICATE_KEY]
    baseline_keys = [BETA, REPLICATE_KEY]
    for loss, jobs, keys in (
        (MIXUP_LOSS, mixup_jobs, mixup_keys),
        (BASELINE_LOSS, baseline_jobs, baseline_keys),
    ):
        study.failed += [
            f"{loss} job {job.name} ({_describe(job, keys)}): {job.failure}"
            for job in jobs
            if not job.ok
        ]

    def beta_seed(job: Job) -> tuple[float, int]:
        return (_number(job, BETA), _seed(job))

    finished_mixup = [job for job in mixup_jobs if job.ok]
    _index(
        finished_mixup, mixup_dir, lambda job: (*beta_seed(job), _number(job, ALPHA)), mixup_keys
    )
    partners = _index(
        [job for job in baseline_jobs if job.ok], baseline_dir, beta_seed, baseline_keys
    )
    failed_partners = {beta_seed(job): job for job in baseline_jobs if not job.ok}
    for job in finished_mixup:
        beta, seed = beta_seed(job)
        partner = partners.get((beta, seed))
        if partner is not None:
            study.pairs.append(Pair(beta, _number(job, ALPHA), seed, job, partner))
            continue
        why = (
            f"its {BASELINE_LOSS} partner, job {failed_partners[(beta, seed)].name}, failed"
            if (beta, seed) in failed_partners
            else f"no {BASELINE_LOSS} job has beta={_fmt(beta)} seed={seed}"
        )
        study.unpaired.append(f"{MIXUP_LOSS} job {job.name} ({_describe(job, mixup_keys)}): {why}")
    used = {beta_seed(pair.baseline) for pair in study.pairs}
    study.unpaired += [
        f"{BASELINE_LOSS} job {job.name} ({_describe(job, baseline_keys)}): no finished "
        f"{MIXUP_LOSS} job has its beta and seed"
        for key, job in partners.items()
        if key not in used
    ]
    if not study.pairs:
        raise ValueError(_no_pairs_reason(study, finished_mixup, list(partners.values())))
    return study


def _no_pairs_reason(study: Study, mixup: list[Job], baseline: list[Job]) -> str:
    def grid(jobs: list[Job]) -> str:
        betas = sorted({_number(job, BETA) for job in jobs})
        seeds = sorted({_seed(job) for job in jobs})
        return f"betas {', '.join(map(_fmt, betas))}; seeds {', '.join(map(str, seeds))}"

    if not mixup or not baseline:
        empty, jobs = (
            (study.mixup_dir, study.mixup_jobs)
            if not mixup
            else (study.baseline_dir, study.baseline_jobs)
        )
        return f"no pairs: {empty} has no finished job (all {len(jobs)} failed)"
    return (
        f"no pairs: no {MIXUP_LOSS} job shares beta and seed with a finished {BASELINE_LOSS} job "
        f"({MIXUP_LOSS}: {grid(mixup)}; {BASELINE_LOSS}: {grid(baseline)})"
    )


# --- tables, figure, files -------------------------------------------------------------------


def gain_table(study: Study, metric: str) -> str:
    """Rows beta, columns alpha; cells 'mean gain (seeds won/seeds)', '–' without a pair."""
    cells = {(cell.beta, cell.alpha): cell for cell in study.cells(metric)}
    header = [f"beta \\ {ALPHA}", *map(_fmt, study.alphas)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for beta in study.betas:
        row = [_fmt(beta)]
        for alpha in study.alphas:
            cell = cells.get((beta, alpha))
            row.append(
                "–" if cell is None else f"{cell.mean_gain:+.3f} ({cell.wins}/{cell.n_seeds})"
            )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def baseline_table(study: Study) -> str:
    """The ce_kl jobs' own F1 per beta (mean ± sample std over its finished seeds)."""
    header = [BETA, *METRICS, "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    betas = sorted({_number(job, BETA) for job in study.baseline_jobs if job.ok})
    for beta in betas:
        row = [_fmt(beta)]
        for metric in METRICS:
            values = study.baseline_values(beta, metric)
            mean = statistics.fmean(values) if values else math.nan
            std = statistics.stdev(values) if len(values) > 1 else math.nan
            row.append(mean_std(mean, std))
        seeds = sum(job.ok and _number(job, BETA) == beta for job in study.baseline_jobs)
        lines.append("| " + " | ".join([*row, str(seeds)]) + " |")
    return "\n".join(lines)


def _sweep_line(label: str, sweep_dir: Path, jobs: list[Job]) -> str:
    finished = sum(job.ok for job in jobs)
    return (
        f"- {label}: `{sweep_dir}`: {len(jobs)} jobs, {finished} finished, "
        f"{len(jobs) - finished} failed"
    )


def markdown(study: Study) -> str:
    """mixup_gain.md: the header (folders, pairs, skipped jobs), one gain table per metric and
    the baseline's own F1 per beta."""
    lines = [
        f"# Where does mixup help? {MIXUP_LOSS} against {BASELINE_LOSS}, paired by seed",
        "",
        _sweep_line(f"with mixup ({MIXUP_LOSS})", study.mixup_dir, study.mixup_jobs),
        _sweep_line(f"without ({BASELINE_LOSS})", study.baseline_dir, study.baseline_jobs),
        f"- {len(study.pairs)} pairs: {len(study.betas)} betas x {len(study.alphas)} alphas, "
        f"seeds {', '.join(map(str, study.seeds))}. A pair is a {MIXUP_LOSS} job and the "
        f"{BASELINE_LOSS} job of its beta and seed (same seed: same data and initial weights).",
        f"- gain = F1({MIXUP_LOSS}) - F1({BASELINE_LOSS}) per pair; a cell is the mean gain over "
        "its seeds and (seeds won/seeds), where won means gain > 0: a tie counts as not won. "
        f"{OUTPUT_NAME}.csv adds the standard error (sample std / sqrt(n)).",
    ]
    for metric in METRICS:
        missing = sum(pair.gain(metric) is None for pair in study.pairs)
        if missing:
            lines.append(f"- {missing} pairs lack {metric}: left out of its table")
    for title, entries in (
        ("Failed jobs (skipped)", study.failed),
        ("Finished jobs without a partner (skipped)", study.unpaired),
    ):
        lines += ["", f"{title}: {len(entries)}"]
        if entries:
            lines += ["", *[f"- {entry}" for entry in entries]]
    for metric, meaning in METRICS.items():
        lines += ["", f"## Gain in {metric} ({meaning})", "", gain_table(study, metric)]
    lines += [
        "",
        f"## {BASELINE_LOSS} alone: F1 per beta (mean ± sample std over its finished seeds)",
        "",
        baseline_table(study),
    ]
    return "\n".join(lines) + "\n"


def csv_text(study: Study) -> str:
    """Long format: one row per (beta, alpha, metric); sem empty for a single seed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["beta", "alpha", "metric", "mean_gain", "sem", "share_won", "n_seeds"])
    cells = [cell for metric in METRICS for cell in study.cells(metric)]
    order = list(METRICS)
    for cell in sorted(cells, key=lambda c: (c.beta, c.alpha, order.index(c.metric))):
        writer.writerow(
            [
                _fmt(cell.beta),
                _fmt(cell.alpha),
                cell.metric,
                repr(cell.mean_gain),
                "" if math.isnan(cell.sem) else repr(cell.sem),
                repr(cell.share_won),
                cell.n_seeds,
            ]
        )
    return buffer.getvalue()


def gain_figure(study: Study) -> Figure:
    """Two heatmaps side by side (gain at delta, gain at the tuned threshold) on one diverging
    colour scale centred at 0; each cell shows the mean gain and, beneath it, seeds won/seeds."""
    from oodmix.plots.sweeps import heatmap_figure

    panels: dict[str, dict[tuple[str, str], float]] = {}
    shares: dict[str, dict[tuple[str, str], str]] = {}
    for metric, meaning in METRICS.items():
        title = f"gain in {metric}\n({meaning})"
        for cell in study.cells(metric):
            key = (_fmt(cell.alpha), _fmt(cell.beta))
            panels.setdefault(title, {})[key] = cell.mean_gain
            shares.setdefault(title, {})[key] = f"{cell.wins}/{cell.n_seeds} won"
    figure = heatmap_figure(
        panels,
        ALPHA,
        BETA,
        f"mean gain in F1 over seeds: {MIXUP_LOSS} - {BASELINE_LOSS}",
        center=0.0,
    )
    # heatmap_figure writes each cell's value at the cell's centre (x, y) = (column, row), and
    # names the columns and rows by its tick labels: the share goes just beneath the value, in
    # the same colour (dark on strong colours, light on pale ones).
    for ax, title in zip(figure.axes, panels):
        xs = [label.get_text() for label in ax.get_xticklabels()]
        ys = [label.get_text() for label in ax.get_yticklabels()]
        for text in list(ax.texts):
            column, row = text.get_position()
            share = shares[title].get((xs[round(column)], ys[round(row)]))
            if share is not None:
                ax.text(column, row - 0.3, share, ha="center", va="center",
                        color=text.get_color(), fontsize=7)  # fmt: skip
    figure.suptitle(f"{MIXUP_LOSS} against {BASELINE_LOSS}, paired by seed")
    return figure


def default_out(mixup_dir: Path, baseline_dir: Path) -> Path:
    """The folder that holds both sweeps."""
    parents = {Path(mixup_dir).resolve().parent, Path(baseline_dir).resolve().parent}
    if len(parents) > 1:
        raise ValueError(
            f"{mixup_dir} and {baseline_dir} are in different folders; choose where to write "
            "with --out DIR"
        )
    return parents.pop()


def write_study(
    mixup_dir: Path, baseline_dir: Path, out: Path | None = None
) -> tuple[Study, str, list[Path]]:
    """Pair the sweeps and write mixup_gain.md, .csv and .png into `out` (default: the folder
    holding both sweeps). Returns the study, the Markdown text and the written paths."""
    study = pair_sweeps(mixup_dir, baseline_dir)
    out = Path(out) if out is not None else default_out(mixup_dir, baseline_dir)
    text = markdown(study)
    paths = [out / f"{OUTPUT_NAME}.{suffix}" for suffix in ("md", "csv", "png")]
    write_text_atomic(paths[0], text)
    write_text_atomic(paths[1], csv_text(study))
    save_figure_atomic(gain_figure(study), paths[2])
    return study, text, paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Pair every {MIXUP_LOSS} job with the {BASELINE_LOSS} job of its beta and "
        "seed, and report the gain in test F1 (at delta and at the validation-tuned threshold) "
        "per beta and mixup alpha: mixup_gain.md, mixup_gain.csv, mixup_gain.png.",
    )
    parser.add_argument("mixup_sweep", type=Path, help=f"a multirun folder of loss={MIXUP_LOSS}")
    parser.add_argument(
        "baseline_sweep", type=Path, help=f"a multirun folder of loss={BASELINE_LOSS}"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to write (default: the folder that holds both sweeps)",
    )
    args = parser.parse_args(argv)
    try:
        _, text, paths = write_study(args.mixup_sweep, args.baseline_sweep, args.out)
    except (FileNotFoundError, ValueError) as error:
        message = " ".join(str(error).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)
    print(text, end="")
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
