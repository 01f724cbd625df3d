"""oodmix's training speed against a plain-PyTorch loop, and what a user waits for.

    .venv/bin/python benchmarks/performance.py            # about 7 minutes on 2 CPU cores
    .venv/bin/python benchmarks/performance.py --only validation   # half a minute

Measures, and prints as a table:
  1. Training time of oodmix (its LightningModule, datamodule and Trainer, built from the
     shipped config exactly as `oodmix-train` builds them) against benchmarks/reference_loop.py
     on identical work: same data tensors, initial weights, optimiser, objective, batch size
     and number of optimiser steps, with validation and checkpointing off on both sides. The
     two are alternated in one process after a warm-up; medians and their ratio are reported,
     and the final weights of the two are compared (they must agree: same work).
     For ce, ce_kl and ce_kl_mixup, at 4 thousand, 400 thousand and 4 million training points
     (half ID, half OOD), on the CPU, and on the GPU too when one is present.
  2. Time per epoch of oodmix at each size (linear in the number of points when nothing is
     copied per epoch) and the data's address across epochs (the same tensors every epoch).
  3. Whole-process time and peak resident memory of a default `oodmix-train`, time per job of
     a 15-job multirun, and the peak resident memory of a run on 4 million points.
  4. What validating every epoch costs: fits of the default data and objective (ce_kl_mixup,
     50 epochs) as `oodmix-train` runs them (per-epoch validation, checkpoints, CSV logger,
     every default callback) alternated with the same fits training only (as in 1.); the cost
     is the median over repetitions of the difference in ms per epoch, in the steady state
     (the target is 2 ms) and over the whole fit, printed with the machine's load average;
     and, alternated with them, the same fits with the detection metrics replaced by a
     constant val/f1: what Lightning's validation loop, the forward pass, the checkpoints and
     the logger cost without any metric (the floor under oodmix's own share).

`--only` runs some of these (training, epochs, process, validation); the results then replace
those parts of an existing <out>/performance.json, whose other parts are kept.

Writes <out>/performance.json, <out>/performance.png and <out>/table.md (default
outputs/benchmarks/performance).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measuring import (
    load_average,
    machine,
    markdown_table,
    progress,
    run_oodmix,
    synchronize,
    write_results,
)
from reference_loop import OBJECTIVES, reference_fit

from oodmix.callbacks import DetectionEvaluation
from oodmix.config.paths import config_dir
from oodmix.files import save_figure_atomic
from oodmix.metrics import publish
from oodmix.runs.build import build_run

SIZES = (4_000, 400_000, 4_000_000)
TARGET_RATIO = 1.3
PARTS = ("training", "epochs", "process", "validation")
#: What per-epoch validation may add to an epoch of the default data, in milliseconds.
TARGET_VALIDATION_MS = 2.0


#: Training only: no validation, checkpoints, logger or callbacks.
TRAINING_ONLY = (
    "~callbacks",
    "logger=none",
    "test_ckpt=last",
    "+trainer.limit_val_batches=0",
    "+trainer.enable_checkpointing=false",
)


def run_config(
    objective: str,
    n_points: int,
    steps: int,
    device: str,
    out: str,
    epochs: int | None = None,
    validation: bool = False,
):
    """The shipped config for `objective` on two_disks with n_points training points (half ID,
    half OOD): training only, or with `validation` as `oodmix-train` runs it (per-epoch
    validation, checkpoints, the CSV logger, every default callback)."""
    per_disk = n_points // 4
    length = (
        [f"trainer.max_epochs={epochs}"]
        if epochs
        else [f"+trainer.max_steps={steps}", "trainer.max_epochs=1000000"]
    )
    overrides = [
        f"loss={objective}",
        f"trainer={'gpu' if device == 'cuda' else 'cpu'}",
        f"data.disks.0.n_train={per_disk}",
        f"data.disks.1.n_train={per_disk}",
        f"data.n_ood_train={n_points // 2}",
        *([] if validation else TRAINING_ONLY),
        "progress=none",  # no bar in the timed fits, also when run from a terminal
        f"output_dir={out}",
        *length,
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=validation)
    if validation:  # the callbacks' configs read Hydra's (the loss's name in a figure title)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = out
            cfg.hydra.job.num = 0
        HydraConfig.instance().set_config(cfg)
    return cfg


class Contender:
    """One side of the comparison: `prepare()` builds a fresh run, `fit()` trains it."""

    def __init__(self, objective: str, cfg: Any, splits: Any, device: str) -> None:
        self.objective, self.cfg, self.splits, self.device = objective, cfg, splits, device
        self.initial_net = build_run(cfg).module.net  # both sides start from these weights

    def prepare(self) -> None:
        raise NotImplementedError

    def fit(self) -> None:
        raise NotImplementedError

    def weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class OodmixContender(Contender):
    def prepare(self) -> None:
        self.run = build_run(self.cfg)
        self.run.module.net.load_state_dict(self.initial_net.state_dict())
        self.run.datamodule.splits = self.splits  # the data, generated once and on the device
        torch.manual_seed(self.cfg.seed)  # mixup's draws start from the same state on both sides

    def fit(self) -> None:
        self.run.trainer.fit(self.run.module, datamodule=self.run.datamodule)

    def weights(self) -> dict[str, torch.Tensor]:
        return self.run.module.net.state_dict()


class ReferenceContender(Contender):
    def prepare(self) -> None:
        self.net = copy.deepcopy(self.initial_net).to(self.device)  # oodmix's network class
        self.optimizer = instantiate(self.cfg.model.optimizer)(self.net.parameters())
        torch.manual_seed(self.cfg.seed)

    def fit(self) -> None:
        s = self.splits
        reference_fit(
            self.net,
            self.optimizer,
            s.id_x,
            s.id_y,
            s.ood_x,
            self.objective,
            steps=self.cfg.trainer.max_steps,
            batch_size=self.cfg.data.batch_size,
            beta=self.cfg.beta,
            alpha=self.cfg.mixup.alpha,
            seed=self.cfg.seed,
        )

    def weights(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()


def timed(contender: Contender) -> float:
    contender.prepare()
    synchronize(contender.device)
    start = time.perf_counter()
    contender.fit()
    synchronize(contender.device)
    return time.perf_counter() - start


def max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].float().cpu() - b[k].float().cpu()).abs().max()) for k in a)


def compare(objective: str, n_points: int, steps: int, repeats: int, device: str, out: str):
    """Median training times of oodmix and the reference loop, alternated, after a warm-up."""
    cfg = run_config(objective, n_points, steps, device, out)
    splits = build_run(cfg).datamodule.generate().to(torch.device(device))
    sides = {
        "oodmix": OodmixContender(objective, cfg, splits, device),
        "reference": ReferenceContender(objective, cfg, splits, device),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    for side in sides.values():  # warm-up: first-call costs belong to neither side
        timed(side)
    difference = max_weight_difference(sides["oodmix"].weights(), sides["reference"].weights())
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            times[name].append(timed(sides[name]))
    oodmix, reference = (statistics.median(times[name]) for name in ("oodmix", "reference"))
    return {
        "objective": objective,
        "n_points": n_points,
        "device": device,
        "steps": steps,
        "batch_size": int(cfg.data.batch_size),
        "oodmix_s": oodmix,
        "reference_s": reference,
        "ratio": oodmix / reference,
        "oodmix_all_s": times["oodmix"],
        "reference_all_s": times["reference"],
        "max_weight_difference": difference,
    }


class EpochClock(L.Callback):
    """Times each training epoch and notes the address of the training data at its start."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.data_pointers: set[int] = set()

    def on_train_epoch_start(self, trainer, module) -> None:
        synchronize(module.device.type)
        self.data_pointers.add(trainer.datamodule.splits.id_x.data_ptr())
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module) -> None:
        synchronize(module.device.type)
        self.seconds.append(time.perf_counter() - self.start)


def epoch_times(n_points: int, epochs: int, device: str, out: str) -> dict[str, Any]:
    """Seconds per epoch of ce_kl_mixup at n_points (median over epochs after the first)."""
    cfg = run_config("ce_kl_mixup", n_points, 0, device, out, epochs=epochs)
    run = build_run(cfg)
    clock = EpochClock()
    run.trainer.callbacks.append(clock)
    run.datamodule.setup("fit")  # generating the data is not an epoch
    run.trainer.fit(run.module, datamodule=run.datamodule)
    measured = clock.seconds[1:] if len(clock.seconds) > 1 else clock.seconds
    seconds = statistics.median(measured)
    return {
        "n_points": n_points,
        "device": device,
        "epochs": epochs,
        "steps_per_epoch": run.datamodule.train_dataloader().steps,
        "epoch_s": seconds,
        "us_per_point": seconds / n_points * 1e6,
        "same_tensors_every_epoch": len(clock.data_pointers) == 1,
    }


class EpochStarts(L.Callback):
    """The time each training epoch starts: from one start to the next lies a whole epoch,
    its validation and the checkpoints written after it included."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, module) -> None:
        synchronize(module.device.type)
        self.times.append(time.perf_counter())


class ConstantMonitor(L.Callback):
    """Stands in for DetectionEvaluation in the floor case: publishes a constant val/f1 after
    each validation (what the checkpoint callback monitors), computing nothing."""

    def on_validation_epoch_end(self, trainer, module) -> None:
        publish(trainer, {"val/f1": torch.tensor(0.5)})


def fit_ms_per_epoch(
    cfg: Any, splits: Any, device: str, floor: bool = False
) -> tuple[float, float]:
    """One fit of a freshly built run: (ms per epoch in the steady state, ms per epoch of the
    whole fit). The steady state is the median time from one epoch's start to the next,
    leaving out the first epoch (which writes the first checkpoints) and the last (the last
    checkpoints); the whole fit adds the run's one-time costs, spread over its epochs."""
    run = build_run(cfg)
    run.datamodule.splits = splits  # the data, generated once and on the device
    if floor:  # Lightning's validation loop, forward pass, checkpoints, logger; no metrics
        callbacks = run.trainer.callbacks
        callbacks[:] = [
            ConstantMonitor() if isinstance(c, DetectionEvaluation) else c for c in callbacks
        ]
    starts = EpochStarts()
    run.trainer.callbacks.insert(0, starts)
    synchronize(device)
    start = time.perf_counter()
    run.trainer.fit(run.module, datamodule=run.datamodule)
    synchronize(device)
    whole = (time.perf_counter() - start) / cfg.trainer.max_epochs * 1000
    gaps = [(b - a) * 1000 for a, b in zip(starts.times, starts.times[1:])]
    steady = statistics.median(gaps[1:] or gaps) if gaps else whole
    return steady, whole


def validation_cost(epochs: int, repeats: int, device: str, out: str) -> dict[str, Any]:
    """Per-epoch cost of validating every epoch: fits of the default data and objective as
    `oodmix-train` runs them, alternated with fits that only train, after a warm-up of each.

    cost = median over repetitions of (ms per epoch with validation - ms per epoch without),
    each difference taken between the two fits of one repetition (run back to back, so that a
    change of the machine's load between repetitions cancels out): in the steady state (what
    each further epoch costs), and over the whole fit (with the run's one-time costs: building
    the metrics, writing hparams.yaml, the first and the last checkpoints). Every fit gets a
    fresh run folder (its checkpoints and metrics.csv).
    """
    n_points = 4_000

    def config(case: str) -> Any:
        folder = tempfile.mkdtemp(prefix=f"{case}_", dir=out)  # a fresh run folder per fit
        validation = case != "training"
        return run_config("ce_kl_mixup", n_points, 0, device, folder, epochs, validation)

    splits = build_run(config("training")).datamodule.generate().to(torch.device(device))
    # floor: as validation, with DetectionEvaluation replaced by ConstantMonitor, i.e. what
    # Lightning's validation loop, the forward pass, the checkpoints and the logger cost alone.
    steady: dict[str, list[float]] = {"training": [], "validation": [], "floor": []}
    whole: dict[str, list[float]] = {"training": [], "validation": [], "floor": []}
    load_before = load_average()
    for repeat in range(-1, repeats):  # -1: the warm-up, not recorded
        order = list(steady) if repeat % 2 == 0 else list(reversed(steady))
        for case in order:
            floor = case == "floor"
            ms_steady, ms_whole = fit_ms_per_epoch(config(case), splits, device, floor)
            if repeat >= 0:
                steady[case].append(ms_steady)
                whole[case].append(ms_whole)

    def paired(times: dict[str, list[float]], case: str = "validation") -> float:
        pairs = zip(times[case], times["training"], strict=True)
        return statistics.median(v - t for v, t in pairs)

    return {
        "device": device,
        "n_points": n_points,
        "objective": "ce_kl_mixup",
        "epochs": epochs,
        "repeats": repeats,
        "training_ms_per_epoch": statistics.median(steady["training"]),
        "validation_ms_per_epoch": statistics.median(steady["validation"]),
        "validation_cost_ms": paired(steady),
        "whole_fit_validation_cost_ms": paired(whole),
        "floor_ms_per_epoch": statistics.median(steady["floor"]),
        "floor_cost_ms": paired(steady, "floor"),
        "floor_all_ms": steady["floor"],
        "training_all_ms": steady["training"],
        "validation_all_ms": steady["validation"],
        "whole_fit_training_all_ms": whole["training"],
        "whole_fit_validation_all_ms": whole["validation"],
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "target_ms": TARGET_VALIDATION_MS,
    }


def validation_line(v: dict[str, Any]) -> str:
    load = f"{v['load_average_before'][0]:.2f} / {v['load_average_after'][0]:.2f}"
    return (
        f"{v['device']}: per-epoch validation costs {v['validation_cost_ms']:.2f} ms an epoch "
        f"(target {v['target_ms']:g} ms; {v['whole_fit_validation_cost_ms']:.2f} ms an epoch "
        f"over a whole {v['epochs']}-epoch fit, one-time costs included): "
        f"{v['validation_ms_per_epoch']:.2f} ms per epoch with validation, checkpoints and CSV "
        f"log, {v['training_ms_per_epoch']:.2f} ms training only; medians of {v['repeats']} "
        f"alternated repetitions; load average {load} (before / after). Of it, Lightning's "
        f"validation loop, the forward pass, checkpoints and logger alone (val/f1 a constant): "
        f"{v['floor_cost_ms']:.2f} ms"
    )


def run_process(args: list[str], cwd: str) -> dict[str, float | None]:
    """Wall time and peak resident memory (MB; None without /proc) of `python -m oodmix ...`."""
    process, wall, peak = run_oodmix(args, cwd, program="oodmix")
    if process.returncode != 0:
        raise RuntimeError(f"oodmix {' '.join(args)} failed:\n{process.stderr}")
    return {"wall_s": wall, "peak_rss_mb": peak}


def import_time(repeats: int) -> float:
    """Seconds to start Python and import what every oodmix-train process imports."""
    code = "import torch, lightning.pytorch, torchmetrics, hydra, matplotlib.pyplot"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def whole_process(repeats: int, workdir: str) -> dict[str, Any]:
    default = [
        run_process([f"hydra.run.dir={workdir}/default{i}"], workdir) for i in range(repeats)
    ]
    start = time.perf_counter()
    run_process(
        ["-m", "loss=ce,ce_kl,ce_kl_mixup", "seed=0,1,2,3,4", f"hydra.sweep.dir={workdir}/sweep"],
        workdir,
    )
    sweep = time.perf_counter() - start
    big = run_process(
        [
            "data.disks.0.n_train=1000000",
            "data.disks.1.n_train=1000000",
            "data.n_ood_train=2000000",
            "trainer.max_epochs=1",
            "plots=false",
            f"hydra.run.dir={workdir}/big",
        ],
        workdir,
    )
    return {
        "imports_s": import_time(repeats),
        "default_run_s": statistics.median(r["wall_s"] for r in default),
        "default_run_all_s": [r["wall_s"] for r in default],
        "default_run_peak_rss_mb": max(r["peak_rss_mb"] or 0 for r in default),
        "multirun_15_jobs_s": sweep,
        "multirun_per_job_s": sweep / 15,
        "run_4m_points_peak_rss_mb": big["peak_rss_mb"] or 0,
        "run_4m_points_s": big["wall_s"],
    }


def format_table(results: dict[str, Any]) -> str:
    """The tables of the parts present in `results`, in markdown."""
    lines: list[str] = []
    if results.get("training"):
        lines += markdown_table(
            ["device", "points", "objective", "oodmix (s)", "plain PyTorch (s)", "ratio"],
            "lrlrrr",
            (
                [
                    r["device"],
                    f"{r['n_points']:,}",
                    r["objective"],
                    f"{r['oodmix_s']:.3f}",
                    f"{r['reference_s']:.3f}",
                    f"{r['ratio']:.2f}",
                ]
                for r in results["training"]
            ),
        )
        steps, batch = results["training"][0]["steps"], results["training"][0]["batch_size"]
        lines += [
            "",
            f"{steps} optimiser steps at batch {batch}; medians of {results['repeats']} "
            "alternated repetitions.",
            "",
        ]
    if results.get("epochs"):
        lines += markdown_table(
            ["device", "points", "steps per epoch", "seconds per epoch", "µs per point"],
            "lrrrr",
            (
                [
                    e["device"],
                    f"{e['n_points']:,}",
                    f"{e['steps_per_epoch']:,}",
                    f"{e['epoch_s']:.3f}",
                    f"{e['us_per_point']:.3f}",
                ]
                for e in results["epochs"]
            ),
        )
        lines.append("")
    if results.get("validation"):
        header = ["device", "points", "objective", "training only (ms/epoch)"]
        header += ["with validation (ms/epoch)", "validation cost (ms/epoch)"]
        header += ["over a whole fit (ms/epoch)", "of it, without metrics (ms/epoch)"]
        lines += markdown_table(
            header,
            "lrlrrrrr",
            (
                [
                    v["device"],
                    f"{v['n_points']:,}",
                    v["objective"],
                    f"{v['training_ms_per_epoch']:.2f}",
                    f"{v['validation_ms_per_epoch']:.2f}",
                    f"{v['validation_cost_ms']:.2f}",
                    f"{v['whole_fit_validation_cost_ms']:.2f}",
                    f"{v['floor_cost_ms']:.2f}" if "floor_cost_ms" in v else "",
                ]
                for v in results["validation"]
            ),
        )
        v = results["validation"][0]
        lines += [
            "",
            "With validation: per-epoch validation, checkpoints and the CSV logger, as a default "
            f"`oodmix-train` runs them; fits of {v['epochs']} epochs, medians of {v['repeats']} "
            "alternated repetitions (epoch start to epoch start, first and last epochs left "
            "out), the cost the median of the paired differences; over a whole fit: the same "
            "with the run's one-time costs spread over its epochs. Load average "
            f"{v['load_average_before'][0]:.2f} before, {v['load_average_after'][0]:.2f} after. "
            "Without metrics: the same fits with DetectionEvaluation replaced by a callback that "
            "publishes a constant val/f1 (Lightning's validation loop, the forward pass, the "
            "checkpoints and the logger alone).",
            "",
        ]
    process = results.get("process")
    if process:
        imports = "of which starting Python and importing torch, Lightning, torchmetrics, Hydra"
        lines += markdown_table(
            ["whole process", "value"],
            "lr",
            [
                ["default `oodmix-train` (wall, median)", f"{process['default_run_s']:.1f} s"],
                [imports, f"{process['imports_s']:.1f} s"],
                [
                    "default `oodmix-train` peak RSS",
                    f"{process['default_run_peak_rss_mb']:.0f} MB",
                ],
                ["15-job multirun, per job", f"{process['multirun_per_job_s']:.2f} s"],
                [
                    "4M-point run (1 epoch) peak RSS",
                    f"{process['run_4m_points_peak_rss_mb']:.0f} MB",
                ],
            ],
        )
    return "\n".join(lines).strip()


def plot(results: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = results["training"]
    labels = sorted({(r["device"], r["n_points"]) for r in rows})
    objectives = [o for o in OBJECTIVES if any(r["objective"] == o for r in rows)]
    width = 0.8 / len(objectives)
    for k, objective in enumerate(objectives):
        ratios = [
            next(
                r["ratio"]
                for r in rows
                if (r["device"], r["n_points"]) == label and r["objective"] == objective
            )
            for label in labels
        ]
        left.bar([i + k * width for i in range(len(labels))], ratios, width, label=objective)
    left.axhline(TARGET_RATIO, color="black", linestyle="--", linewidth=1, label="target 1.3")
    left.axhline(1.0, color="grey", linewidth=0.8)
    left.set_xticks([i + width for i in range(len(labels))])
    left.set_xticklabels([f"{d}\n{n:,}" for d, n in labels])
    left.set_ylabel("oodmix / plain PyTorch (training time)")
    left.legend(fontsize=8)
    for device in sorted({e["device"] for e in results["epochs"]}):
        points = [e for e in results["epochs"] if e["device"] == device]
        right.loglog(
            [e["n_points"] for e in points], [e["epoch_s"] for e in points], "o-", label=device
        )
    right.set_xlabel("training points")
    right.set_ylabel("seconds per epoch (ce_kl_mixup)")
    right.legend(fontsize=8)
    figure.tight_layout()
    return figure


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=OBJECTIVES)
    parser.add_argument("--steps", type=int, default=800, help="optimiser steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-process", action="store_true", help="skip the whole-process runs")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        help="run only these parts; the others are kept from an existing <out>/performance.json",
    )
    parser.add_argument("--validation-epochs", type=int, default=50, help="epochs per fit")
    parser.add_argument("--validation-repeats", type=int, default=21)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/performance"))
    args = parser.parse_args(argv)
    counts = (args.steps, args.repeats, args.validation_epochs, args.validation_repeats)
    if min(counts) < 1 or min(args.sizes) < 4:
        parser.error(
            "--steps, --repeats, --validation-epochs and --validation-repeats must be >= 1 and "
            "every size >= 4"
        )
    parts = set(args.only or PARTS) - ({"process"} if args.no_process else set())

    results: dict[str, Any] = {"machine": machine()}
    previous = args.out / "performance.json"
    if args.only and previous.is_file():  # keep the parts not measured now
        results = {**json.loads(previous.read_text()), **results}
    with tempfile.TemporaryDirectory() as workdir:
        if "training" in parts:
            results.update(training=[], repeats=args.repeats)
        if "epochs" in parts:
            results["epochs"] = []
        for device in devices():
            for n_points in args.sizes if parts & {"training", "epochs"} else ():
                for objective in args.objectives if "training" in parts else ():
                    row = compare(objective, n_points, args.steps, args.repeats, device, workdir)
                    results["training"].append(row)
                    progress(
                        f"{device} {n_points:>9,} {objective:<12} oodmix {row['oodmix_s']:.3f} s"
                        f"  reference {row['reference_s']:.3f} s  ratio {row['ratio']:.2f}"
                        f"  max |weight difference| {row['max_weight_difference']:.1e}"
                    )
                if "epochs" in parts:
                    # Many short epochs at the smallest size, one at the largest.
                    epochs = max(1, min(40, 160_000 // n_points))
                    results["epochs"].append(epoch_times(n_points, epochs, device, workdir))
        if "validation" in parts:
            results["validation"] = []
            for device in devices():
                cost = validation_cost(
                    args.validation_epochs, args.validation_repeats, device, workdir
                )
                results["validation"].append({**cost, "machine": machine()})
                progress(validation_line(cost))
        if "process" in parts:
            results["process"] = whole_process(3, workdir)
    table = format_table(results)
    write_results(args.out, "performance.json", results, table)
    written = ["performance.json", "table.md"]
    if results.get("training") and results.get("epochs"):
        save_figure_atomic(plot(results), args.out / "performance.png")
        written.append("performance.png")
    print(table)
    for v in results.get("validation", []):
        print(f"\n{validation_line(v)}")
    print(f"\nwritten to {args.out}/: {', '.join(written)}")
    return results


if __name__ == "__main__":
    main()
