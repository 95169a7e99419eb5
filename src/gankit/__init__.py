"""gankit: train, sample and evaluate generative adversarial networks with PyTorch."""

from gankit.errors import GankitError

__version__ = "0.1.0"
__all__ = ["GankitError", "__version__"]
