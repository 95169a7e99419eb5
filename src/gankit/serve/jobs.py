"""Projections in the background: the page starts one, polls its progress and fetches its files.

Each job runs :func:`gankit.inference.projection.project` in its own thread and writes
:func:`~gankit.inference.projection_files.save_projection`'s files into its own folder under the
explorer's temporary folder (and, when the explorer was given ``--out``, into ``OUT/JOB``).
At most :data:`MAX_RUNNING` run at once; a new one beyond that is refused (429), so a page
cannot queue up unbounded work.
"""

from __future__ import annotations

import io
import logging
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from gankit.errors import GankitError, first_line
from gankit.inference.latent import frame_image
from gankit.inference.projection import Schedule, project
from gankit.inference.projection_files import save_projection
from gankit.inference.roles import Generative
from gankit.serve.runs import Slot
from gankit.serve.uploads import RequestError

log = logging.getLogger("gankit.serve")

MAX_RUNNING = 2
"""Projections that may run at the same time."""
KEEP = 20
"""Finished jobs kept (their files too); older ones are removed."""
FILES = {
    "projection.png": "image/png",
    "projection-target.png": "image/png",
    "projection.pt": "application/octet-stream",
    "projection.npy": "application/octet-stream",
    "projection-progress.gif": "image/gif",
}
"""The files of a finished job, by the name the page asks for, with their media types."""


class _Cancelled(Exception):
    pass


@dataclass
class Job:
    """One projection: its progress, its newest picture, and where its files are."""

    id: str
    slot: int
    steps: int
    distance: str
    folder: Path
    step: int = 0
    status: str = "running"
    error: str | None = None
    preview: bytes | None = None
    summary: dict = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)

    def state(self) -> dict:
        """What the page polls."""
        return {
            "id": self.id, "status": self.status, "step": self.step, "steps": self.steps,
            "distance": self.distance, "error": self.error, **self.summary,
            "files": sorted(FILES) if self.status == "done" else [],
        }  # fmt: skip


class Jobs:
    """The explorer's projections, in ``tmp`` (and copied into ``out`` when given)."""

    def __init__(self, tmp: Path, out: Path | None = None, lpips: nn.Module | None = None) -> None:
        self.tmp, self.out, self.lpips = tmp, out, lpips
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def start(
        self, slot: Slot, target: Tensor, distance: str, steps: int, label: int | None,
        w_plus: bool = False,
    ) -> Job:  # fmt: skip
        """Start projecting ``target`` with ``slot``'s model; 429 when too many are running."""
        with self.lock:
            running = sum(j.status == "running" for j in self.jobs.values())
            if running >= MAX_RUNNING:
                raise RequestError(429, f"{running} projections are running: wait for one to end")
            job_id = uuid.uuid4().hex[:12]
            job = Job(job_id, slot.index, steps, distance, self.tmp / f"job-{job_id}")
            self.jobs[job_id] = job
            self._forget_old()
        args = (job, slot, target, label, w_plus)
        threading.Thread(
            target=self._work, args=args, daemon=True, name=f"project-{job_id}"
        ).start()
        return job

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise RequestError(
                404, f"no projection {job_id[:40]!r} (the server may have restarted)"
            )
        return job

    def file(self, job_id: str, name: str) -> tuple[bytes, str]:
        """A finished job's file and its media type."""
        job = self.get(job_id)
        if name not in FILES:
            raise RequestError(404, f"no file {name[:40]!r}: choose one of {', '.join(FILES)}")
        if job.status != "done":
            raise RequestError(409, f"projection {job_id} is {job.status}, not done")
        return (job.folder / name).read_bytes(), FILES[name]

    def stop(self) -> None:
        """Ask every running job to stop (at its next progress report)."""
        for job in list(self.jobs.values()):
            job.cancel.set()

    def _forget_old(self) -> None:
        done = [j for j in self.jobs.values() if j.status != "running"]
        for job in done[: max(0, len(done) - KEEP)]:
            self.jobs.pop(job.id, None)
            shutil.rmtree(job.folder, ignore_errors=True)

    def _work(self, job: Job, slot: Slot, target: Tensor, label: int | None, w_plus: bool) -> None:
        def progress(step: int, steps: int, image: Tensor) -> None:
            if job.cancel.is_set():
                raise _Cancelled
            job.step = step
            job.preview = to_png_frame(target, image)

        try:
            model = slot.model
            ema = isinstance(model, Generative) and model.has_ema
            proj = project(
                model, target, job.distance, Schedule(steps=job.steps), label=label, ema=ema,
                w_plus=w_plus, lpips=self.lpips, progress=progress,
            )  # fmt: skip
            meta = {"run": str(slot.path), "step": slot.run.step if slot.run else -1}
            save_projection(proj, job.folder, "projection", meta)
            if self.out is not None:
                save_projection(proj, self.out / job.id, "projection", meta)
            job.summary = {"space": proj.space, "label": proj.label, "value": proj.distance}
            job.status = "done"
        except _Cancelled:
            job.status, job.error = "cancelled", "the server is stopping"
        except GankitError as e:
            job.status, job.error = "error", first_line(e)
        except Exception as e:  # one line for the page and the log, never a traceback
            job.status, job.error = "error", f"{type(e).__name__}: {first_line(e)}"
            log.error("projection %s failed: %s", job.id, job.error)


@torch.no_grad()
def to_png_frame(target: Tensor, image: Tensor) -> bytes:
    """The target beside the current projection, as the page's progress picture."""
    buf = io.BytesIO()
    frame_image(torch.cat([target.cpu(), image.cpu()])).save(buf, format="PNG")
    return buf.getvalue()
