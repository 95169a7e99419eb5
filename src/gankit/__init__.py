"""gankit: train, sample and evaluate generative adversarial networks with PyTorch.

The Python API (the functions the command line calls): :func:`train`, :func:`load`,
:func:`evaluate`, :func:`recipes`; see docs/api.md.
"""

from gankit.errors import GankitError

__version__ = "0.2.0"
__all__ = [
    "GankitError",
    "Model",
    "Run",
    "Scores",
    "__version__",
    "evaluate",
    "load",
    "recipes",
    "train",
]


def __getattr__(name: str):
    # The API pulls in torch; importing gankit for its errors or version stays instant.
    if name in ("Model", "Run", "Scores", "evaluate", "load", "recipes", "train"):
        from gankit import api

        return getattr(api, name)
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")
