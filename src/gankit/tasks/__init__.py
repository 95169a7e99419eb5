"""Tasks own networks, optimizers and losses, and know how to do one training step.

Adding a task is one module plus one line in ``TASKS``.
"""

from gankit.tasks.classifier import ClassifierTask
from gankit.tasks.gan import GANTask

TASKS = {"gan": GANTask, "classifier": ClassifierTask}
