"""The explorer's web app: a Starlette application over the loaded runs, and one plain page.

Every route answers JSON or image bytes; every refusal is a 4xx with ``{"error": "one line"}``
and an unexpected failure a 500 with one line (logged as one line too), never a traceback.
Model work runs in Starlette's thread pool, so a slow picture does not stall the page.

    GET  /                         the page (static/index.html)
    GET  /api/runs                 the runs and what each can do
    GET  /api/sample.png           ?run&seed&n&truncation&noise_std&class&ema
    GET  /api/walk.png             ?run&a&b&t&class&ema&mode (one image along the walk)
    GET  /api/walk.gif|.mp4        ?run&a&b&steps&class&ema&mode
    GET  /api/style-mix.png        ?run&rows&cols&layers&psi&class&ema
    GET  /api/curves               ?run
    POST /api/translate.png        ?run&direction, body: the image
    POST /api/project              ?run&steps&distance&class&w_plus, body: the image
    GET  /api/project/{job}        its progress; /api/project/{job}/preview.png, /{file}
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import torch
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gankit.errors import GankitError
from gankit.inference.distances import DISTANCES
from gankit.inference.projection import OFFLINE_DISTANCE
from gankit.inference.projection_files import target_tensor, to_png
from gankit.serve import pictures
from gankit.serve.jobs import Jobs
from gankit.serve.params import MAX_SEED, Query, class_label, one_line
from gankit.serve.runs import Slot, curves
from gankit.serve.uploads import RequestError, check_length, decode_upload, read_capped

log = logging.getLogger("gankit.serve")
STATIC = Path(__file__).parent / "static"
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_TRANSLATE_SIDE = 2048

Handler = Callable[[Request], Awaitable[Response]]


class Explorer:
    """What the app serves: the runs, a temporary folder, the projection jobs."""

    def __init__(
        self, slots: list[Slot], out: Path | None = None, lpips: torch.nn.Module | None = None
    ) -> None:
        self.slots = slots
        self.tmp = Path(tempfile.mkdtemp(prefix="gankit-serve-"))
        self.jobs = Jobs(self.tmp, out, lpips)
        self.distances = [d for d in DISTANCES if d != "lpips" or lpips is not None]
        self.default_distance = "lpips" if lpips is not None else OFFLINE_DISTANCE

    def slot(self, q: Query, need: str | None = None) -> Slot:
        """The run the request names (``run``: its index), loaded and able to do ``need``."""
        i = q.integer("run", 0, 0, 10_000)
        if i >= len(self.slots):
            raise RequestError(404, f"run: no run {i} (this explorer shows {len(self.slots)})")
        slot = self.slots[i]
        if slot.run is None:
            raise RequestError(409, f"{slot.name} could not be loaded: {slot.error}")
        info = slot.info()
        if need and not info[need]:
            what = {"generative": "sample from", "w_space": "mix styles of", "translator":
                    "translate with", "projectable": "project into"}[need]  # fmt: skip
            raise RequestError(400, f"{slot.name} is a {info['task']} run: nothing to {what}")
        return slot

    def close(self) -> None:
        self.jobs.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _handle(fn: Handler) -> Handler:
    """A route whose refusals are one-line JSON errors and whose failures are one-line 500s."""

    async def route(request: Request) -> Response:
        try:
            return await fn(request)
        except RequestError as e:
            return JSONResponse({"error": one_line(e)}, e.status, headers=NO_STORE)
        except GankitError as e:
            return JSONResponse({"error": one_line(e)}, 400, headers=NO_STORE)
        except Exception as e:
            log.error("%s %s failed: %s", request.method, request.url.path, one_line(e))
            return JSONResponse({"error": f"internal error: {one_line(e)}"}, 500, headers=NO_STORE)

    return route


def _png(data: bytes, media: str = "image/png") -> Response:
    return Response(data, media_type=media, headers=NO_STORE)


def _ema(q: Query, slot: Slot) -> bool:
    info = slot.info()
    ema = q.flag("ema", info["has_ema"])
    if ema and not info["has_ema"]:
        raise RequestError(400, "ema: this run was trained without an EMA generator")
    return ema


def _explorer(request: Request) -> Explorer:
    return request.app.state.explorer


async def page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=NO_STORE)


async def runs(request: Request) -> Response:
    ex = _explorer(request)
    body = {
        "runs": [s.info() for s in ex.slots],
        "distances": ex.distances,
        "distance": ex.default_distance,
        "mp4": importlib.util.find_spec("av") is not None,
    }
    return JSONResponse(body, headers=NO_STORE)


async def sample(request: Request) -> Response:
    ex, q = _explorer(request), Query(request.query_params)
    slot = ex.slot(q, "generative")
    s = pictures.SampleSettings(
        seed=q.integer("seed", 0, 0, MAX_SEED),
        n=q.integer("n", 16, 1, 256),
        truncation=q.number("truncation", None, 0, 100, lo_open=True),
        noise_std=q.number("noise_std", 1.0, 0, 100, lo_open=True) or 1.0,
        label=class_label(q, slot.info()["classes"]),
        ema=_ema(q, slot),
    )
    images = await run_in_threadpool(pictures.sample_images, slot.model, s)
    return _png(await run_in_threadpool(pictures.grid_png, images, ex.tmp))


def _walk_args(ex: Explorer, q: Query) -> tuple[Slot, dict]:
    slot = ex.slot(q, "generative")
    return slot, {
        "a": q.integer("a", 0, 0, MAX_SEED),
        "b": q.integer("b", 1, 0, MAX_SEED),
        "label": class_label(q, slot.info()["classes"], required=True),
        "ema": _ema(q, slot),
        "mode": q.choice("mode", "slerp", ("slerp", "lerp")),
    }


async def walk(request: Request) -> Response:
    q = Query(request.query_params)
    slot, kw = _walk_args(_explorer(request), q)
    t = torch.tensor([q.number("t", 0.0, 0, 1)])
    images = await run_in_threadpool(lambda: pictures.walk_images(slot.model, t=t, **kw))
    return _png(to_png(images[0]))


async def walk_video(request: Request) -> Response:
    ex, q = _explorer(request), Query(request.query_params)
    slot, kw = _walk_args(ex, q)
    steps = q.integer("steps", 16, 2, 120)
    suffix = Path(request.url.path).suffix
    data = await run_in_threadpool(
        lambda: pictures.walk_video(slot.model, steps=steps, tmp=ex.tmp, suffix=suffix, **kw)
    )
    name = f"walk-{kw['a']}-{kw['b']}{suffix}"
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(
        data, media_type="image/gif" if suffix == ".gif" else "video/mp4", headers=headers
    )


async def style_mix(request: Request) -> Response:
    ex, q = _explorer(request), Query(request.query_params)
    slot = ex.slot(q, "w_space")
    args = (
        slot.model, q.seeds("rows", [1, 2, 3]), q.seeds("cols", [4, 5, 6]),
        q.text("layers", "0-3", 20), q.number("psi", 1.0, 0, 2), ex.tmp,
        class_label(q, slot.info()["classes"]), _ema(q, slot),
    )  # fmt: skip
    return _png(await run_in_threadpool(pictures.style_mix_png, *args))


async def run_curves(request: Request) -> Response:
    slot = _explorer(request).slot(Query(request.query_params))
    return JSONResponse(await run_in_threadpool(curves, slot.path), headers=NO_STORE)


async def _upload(request: Request, slot: Slot) -> Image.Image:
    """The request's body as a checked, decoded image in the run's channels."""
    check_length(request.headers.get("content-length"))
    data = await read_capped(request.stream())
    return await run_in_threadpool(decode_upload, data, slot.info()["channels"])


async def translate(request: Request) -> Response:
    q = Query(request.query_params)
    slot = _explorer(request).slot(q, "translator")
    direction = q.choice("direction", "AtoB", ("AtoB", "BtoA"))
    image = await _upload(request, slot)
    if max(image.size) > MAX_TRANSLATE_SIDE:
        raise RequestError(
            413, f"image of {image.width}×{image.height}: at most {MAX_TRANSLATE_SIDE} px a side"
        )
    return _png(await run_in_threadpool(pictures.translate_png, slot.model, image, direction))


async def start_projection(request: Request) -> Response:
    ex, q = _explorer(request), Query(request.query_params)
    slot = ex.slot(q, "projectable")
    steps = q.integer("steps", 300, 1, 5000)
    distance = q.choice("distance", ex.default_distance, tuple(ex.distances))
    label = class_label(q, slot.info()["classes"])
    w_plus = q.flag("w_plus", False)
    image = await _upload(request, slot)
    target = target_tensor(image, slot.run.cfg)  # type: ignore[union-attr]
    job = ex.jobs.start(slot, target, distance, steps, label, w_plus)
    return JSONResponse(job.state(), 202, headers=NO_STORE)


async def projection(request: Request) -> Response:
    job = _explorer(request).jobs.get(request.path_params["job"])
    return JSONResponse(job.state(), headers=NO_STORE)


async def projection_file(request: Request) -> Response:
    jobs = _explorer(request).jobs
    job_id, name = request.path_params["job"], request.path_params["name"]
    if name == "preview.png":
        preview = jobs.get(job_id).preview
        if preview is None:
            raise RequestError(409, "no picture yet: the projection has just started")
        return _png(preview)
    data, media = jobs.file(job_id, name)
    headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{job_id}-{name}"'}
    return Response(data, media_type=media, headers=headers)


ROUTES = [
    Route("/api/runs", _handle(runs)),
    Route("/api/sample.png", _handle(sample)),
    Route("/api/walk.png", _handle(walk)),
    Route("/api/walk.gif", _handle(walk_video)),
    Route("/api/walk.mp4", _handle(walk_video)),
    Route("/api/style-mix.png", _handle(style_mix)),
    Route("/api/curves", _handle(run_curves)),
    Route("/api/translate.png", _handle(translate), methods=["POST"]),
    Route("/api/project", _handle(start_projection), methods=["POST"]),
    Route("/api/project/{job}", _handle(projection)),
    Route("/api/project/{job}/{name}", _handle(projection_file)),
]


def create_app(ex: Explorer, host: str = "127.0.0.1") -> Starlette:
    """The Starlette app over ``ex``. Served on a loopback address it answers only requests
    addressed to one, so that a web page elsewhere cannot reach it by DNS rebinding."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        ex.close()

    middleware = []
    if host in LOOPBACK:
        allowed = ["127.0.0.1", "localhost", "[::1]"]
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed))
    static = Mount("/static", StaticFiles(directory=STATIC), name="static")
    app = Starlette(
        routes=[Route("/", page), *ROUTES, static], middleware=middleware, lifespan=lifespan
    )
    app.state.explorer = ex
    return app
