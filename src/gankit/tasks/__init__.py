"""Tasks own networks, optimizers and losses, and know how to do one training step.

The protocol is :class:`gankit.tasks.base.Task`. Adding a task is one module plus one line in
``TASKS``.
"""

from gankit.tasks.base import Task
from gankit.tasks.classifier import ClassifierTask
from gankit.tasks.cut import CutTask
from gankit.tasks.cyclegan import CycleGanTask
from gankit.tasks.gan import GANTask
from gankit.tasks.pix2pix import Pix2PixTask
from gankit.tasks.ssgan import SsganTask

TASKS: dict[str, type[Task]] = {
    "gan": GANTask,
    "classifier": ClassifierTask,
    "cyclegan": CycleGanTask,
    "pix2pix": Pix2PixTask,
    "cut": CutTask,
    "ssgan": SsganTask,
}
