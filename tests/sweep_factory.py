"""Hand-made Hydra multirun folders for the reporting and plotting tests."""

from __future__ import annotations

import json
from pathlib import Path

# Just what the report reads from a job's config (delta, and the paper's "our choices").
MINIMAL_CONFIG = """\
seed: 0
beta: 1.0
delta: 0.8
mixup: {alpha: 1.0}
test_ckpt: best
data: {batch_size: 128, ood_batch_size: null}
model:
  hidden: [32, 32]
  activation: relu
  lr: 0.01
  weight_decay: 0.0
  optimizer: {_target_: torch.optim.Adam, _partial_: true}
trainer: {max_epochs: 50}
"""


def make_job(
    sweep: Path,
    name: str | int,
    overrides: list[str],
    metrics: dict | None = None,
    metrics_text: str | None = None,
    config: str | None = MINIMAL_CONFIG,
    failure: dict | None = None,
) -> Path:
    """<sweep>/<name>/.hydra/overrides.yaml (+ config.yaml), and metrics.json and failure.json
    when given."""
    job = sweep / str(name)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if config is not None:
        (job / ".hydra" / "config.yaml").write_text(config)
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if metrics_text is not None:
        (job / "metrics.json").write_text(metrics_text)
    if failure is not None:
        (job / "failure.json").write_text(json.dumps(failure))
    return job
