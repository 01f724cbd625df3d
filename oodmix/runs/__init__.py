"""The run library: what one training run is built from, how it is trained and evaluated, and
what it writes. `oodmix.train` is the Hydra entry point that calls it; a group of a stacked
sweep (oodmix.stacking.group_run), the benchmarks and the tests call it too.

    parts.py       the datamodule, objective and network of a config (also the pre-flight's)
    context.py     what Hydra says about the run: the chosen options, multirun or not
    build.py       the module and the Trainer with its callbacks and logger (`build_run`)
    evaluation.py  the tested weights' validation and test metrics
    results.py     metrics.json and the printed table
    job.py         one run or one job of a multirun, its failures and its interruption
"""

import warnings

# Lightning 2.6 calls a torch pytree API that newer torch marks deprecated, on every run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
