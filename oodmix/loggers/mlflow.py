"""Lightning's MLflow logger with a local file store by default: one store per sweep.

Where the runs go (`tracking_uri`, in this order):
- the `tracking_uri` given (`logger.tracking_uri=http://host:5000`, `file:outputs/mlruns`);
- else the MLFLOW_TRACKING_URI environment variable, as MLflow itself reads it;
- else a file store in the sweep folder for a job of a multirun (`<sweep>/mlruns`: every job
  of the sweep is a run of one experiment, side by side in MLflow's UI), or in the run
  folder for a single run (`<run>/mlruns`). oodmix writes only under the folders Hydra gives
  it, so two sweeps never share a store, and deleting a folder deletes its runs.

MLflow 3 keeps its file store in maintenance mode and refuses it unless
MLFLOW_ALLOW_FILE_STORE is set; for a `file:` store this logger sets it (when unset). The
file store needs no database (creating an SQLite store runs MLflow's migrations, seconds per
run) and is what `mlflow ui --backend-store-uri <folder>/mlruns` reads.

Each MLflow run carries the tag `oodmix.run_dir`, the oodmix run folder. A later process
writing for the same folder continues that MLflow run instead of starting another: a resumed
run (ckpt_path), and the stages of `trainer=ddp_cpu`, which fork fresh processes for fit,
validate and test. Jobs of a parallel sweep create the experiment under a lock, so they share
one experiment instead of racing to create several of the same name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

RUN_DIR_TAG = "oodmix.run_dir"
FILE_PREFIX = "file:"


def sweep_folder(output_dir: str | Path) -> Path | None:
    """The sweep folder of a multirun job (its folder less `hydra.sweep.subdir`); None when the
    process is not a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    depth = len(Path(str(HydraConfig.get().sweep.subdir)).parts)
    return Path(output_dir).resolve().parents[max(depth, 1) - 1]


def default_tracking_uri(output_dir: str | Path, sweep: str | Path | None) -> str:
    """`file:<sweep>/mlruns` for a job of a multirun, else `file:<run>/mlruns`."""
    folder = Path(sweep) if sweep is not None else Path(output_dir)
    return f"{FILE_PREFIX}{(folder / 'mlruns').resolve()}"


@contextlib.contextmanager
def _store_lock(store: str | None) -> Iterator[None]:
    """An exclusive lock on a local store (a file in it that MLflow ignores: not a folder)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None  # type: ignore[assignment]
    if store is None or fcntl is None:
        yield
        return
    Path(store).mkdir(parents=True, exist_ok=True)
    with open(Path(store) / ".oodmix.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MLFlowLogger(LightningMLFlowLogger):
    """`MLFlowLogger(output_dir, experiment_name, run_name, tracking_uri=None, tags=None,
    **kwargs)`: Lightning's logger (the other arguments are its own) with the store chosen as
    the module docstring says, and one MLflow run per oodmix run folder.

    The hyperparameters are the run's resolved config, flattened to `config/<key>/<key>`
    params (Lightning truncates values at 250 characters and logs 100 per call)."""

    def __init__(
        self,
        output_dir: str,
        experiment_name: str = "oodmix",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.run_dir = str(Path(output_dir).resolve())
        uri = (
            tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or default_tracking_uri(self.run_dir, sweep_folder(self.run_dir))
        )
        if uri.startswith(FILE_PREFIX):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags={**(tags or {}), RUN_DIR_TAG: self.run_dir},
            **kwargs,
        )
        self.continued = False  # whether this process continues an existing MLflow run

    def _existing_run_id(self, experiment_id: str) -> str | None:
        """The MLflow run an earlier process started for this run folder, if any."""
        quote = next((q for q in ("'", '"') if q not in self.run_dir), None)
        # Filtered by the store (a server may hold many runs), unless the folder's name holds
        # both quote characters; checked here either way.
        where = f"tags.`{RUN_DIR_TAG}` = {quote}{self.run_dir}{quote}" if quote else None
        runs = self._mlflow_client.search_runs([experiment_id], filter_string=where or "")
        mine = (r.info.run_id for r in runs if r.data.tags.get(RUN_DIR_TAG) == self.run_dir)
        return next(mine, None)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._initialized or self._run_id is not None:
            return super().experiment
        with _store_lock(self.save_dir):  # save_dir: the local store's folder, else None
            if self._experiment_id is None:  # (created here, without Lightning's notice)
                client, name = self._mlflow_client, self._experiment_name
                found = client.get_experiment_by_name(name)
                if found is None or found.lifecycle_stage == "deleted":
                    self._experiment_id = client.create_experiment(
                        name, artifact_location=self._artifact_location
                    )
                else:
                    self._experiment_id = found.experiment_id
            self._run_id = self._existing_run_id(self._experiment_id)
            self.continued = self._run_id is not None
            return super().experiment

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """MLflow refuses to change a logged param: a continued run (resumed, or a later
        process) logs only the params its run does not have yet. oodmix refuses to resume
        with changed settings, except `ckpt_path`, which keeps its first value here."""
        client = self.experiment  # finds or starts the MLflow run: sets `continued`
        if self.continued:
            logged = client.get_run(self.run_id).data.params
            params = _flatten_dict(_convert_params(params))
            params = {key: value for key, value in params.items() if key not in logged}
            if not params:
                return
        super().log_hyperparams(params)
