"""The MNIST digit classifier that counts Stacked MNIST's modes when no ``--classifier`` is given.

The mode metric of Stacked MNIST (Metz et al. 2017; Srivastava et al. 2017, VEEGAN) reads each
channel with a MNIST classifier. Papers use their own; gankit uses its own too: the
``classifier-mnist`` recipe (a small CNN, 3 epochs of one-cycle SGD) trained once on the 10,000
built-in digits, the same digits ``stacked-mnist`` draws its channels from, and kept in the cache
folder (``$GANKIT_CACHE`` or ``~/.cache/gankit``, ``classifiers/mnist-builtin``). Nothing is
downloaded. Training takes a minute or two on a CPU, once; later evaluations reuse the run.
"""

from __future__ import annotations

from pathlib import Path

from gankit.engine.locks import exclusive
from gankit.evaluation.metrics.features import cache_dir

CLASSIFIER_RECIPE = "classifier-mnist"
CLASSIFIER_OVERRIDES = ("data.source=builtin:mnist", "seed=0")
"""The recipe on gankit's built-in digits, seed 0: the same classifier on every machine
(up to floating-point differences between CPUs)."""


def cached_digit_classifier(folder: str | Path | None = None, say=lambda message: None) -> Path:
    """The run directory of the cached digit classifier, trained first if it is not there yet.

    ``folder``: where to keep it (default ``cache_dir() / "classifiers" / "mnist-builtin"``).
    A second process asking while the first trains gets a one-line error (a lock next to the
    folder); a half-written run (a killed training) is trained again from the start."""
    run = Path(folder) if folder is not None else cache_dir() / "classifiers" / "mnist-builtin"
    if _complete(run):
        return run
    run.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(
        run.parent / f".{run.name}.lock",
        lambda holder: (
            f"the digit classifier {run} is being trained by another process "
            "(wait for it and try again)"
        ),
    ):
        if not _complete(run):
            say(
                f"training the digit classifier for the modes metric once ({CLASSIFIER_RECIPE} "
                f"on the built-in digits, about 2 minutes on a CPU) into {run}"
            )
            _train(run)
    return run


def _complete(run: Path) -> bool:
    return (run / "DONE").is_file()


def _train(run: Path) -> None:
    """``gankit train classifier-mnist ...`` in a child process (the training loop sits above
    evaluation in gankit's layers, so it is run, not imported)."""
    import shutil
    import subprocess
    import sys

    from gankit.errors import GankitError

    if run.exists():
        shutil.rmtree(run)  # an earlier training that did not finish
    cmd = [sys.executable, "-m", "gankit", "train", CLASSIFIER_RECIPE, *CLASSIFIER_OVERRIDES]
    done = subprocess.run([*cmd, "train.progress=false", "--out", str(run)], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode:
        last = (done.stdout.strip().splitlines() or ["no output"])[-1]
        raise GankitError(f"training the digit classifier into {run} failed: {last}")
    (run / "DONE").write_text("trained by gankit.evaluation.digit_classifier\n")
