"""Tasks own networks, optimizers and losses, and know how to do one training step.

The protocol is :class:`gankit.tasks.base.Task`. Adding a task is one module plus one line in
``TASKS``.
"""

from gankit.tasks.base import Task
from gankit.tasks.classifier import ClassifierTask
from gankit.tasks.gan import GANTask

TASKS: dict[str, type[Task]] = {"gan": GANTask, "classifier": ClassifierTask}
