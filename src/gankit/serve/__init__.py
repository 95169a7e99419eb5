"""The local web explorer (``gankit serve``): a Starlette app and one plain page over loaded runs.

Optional: ``pip install -e ".[serve]"`` brings Starlette and uvicorn. Only :mod:`gankit.serve.app`
imports them; :mod:`~gankit.serve.runs`, :mod:`~gankit.serve.pictures`, :mod:`~gankit.serve.jobs`,
:mod:`~gankit.serve.uploads` and :mod:`~gankit.serve.params` work without.
"""
