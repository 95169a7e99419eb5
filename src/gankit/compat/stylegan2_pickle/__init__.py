"""Read NVIDIA's stylegan2-ada-pytorch network pickles without running the code inside them.

A training snapshot of NVlabs/stylegan2-ada-pytorch (``network-snapshot-*.pkl``, written by
``training/training_loop.py``) and the public ``ffhq.pkl``/``afhq*.pkl``/``metfaces.pkl`` files
are plain pickles of a dict: ``G``, ``D``, ``G_ema`` (the networks), ``augment_pipe`` and
``training_set_kwargs``. Each network is a "persistent" object (``torch_utils/persistence.py``):
it pickles as a call ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, and ``meta``
carries the whole source text of ``training/networks.py`` (``module_src``), the class name, and
the instance ``__dict__`` (``state``) with the torch ``_parameters``, ``_buffers`` and
``_modules``, and the constructor's keyword arguments (``_init_kwargs``). NVIDIA's loader
(``legacy.py``, ``load_network_pkl``) runs ``module_src`` with ``exec``: loading such a pickle
with ``pickle.load`` runs whatever code the file holds.

This package never does. Its unpickler resolves an allow-list of globals only, each to a stand-in
that holds data and does nothing else:

* ``torch_utils.persistence._reconstruct_persistent_obj`` -> :class:`PersistentObject`, which keeps
  ``meta`` and never looks at ``module_src`` beyond recognising a StyleGAN3 network;
* ``dnnlib.util.EasyDict`` -> a plain ``dict`` subclass;
* ``collections.OrderedDict``, ``builtins.set``/``frozenset``/``bytearray``/``complex``,
  ``_codecs.encode`` (Latin-1 only: how protocol-2 pickles spell ``bytes``);
* torch's tensor pickling: ``torch._utils._rebuild_tensor_v2``/``_v3``, ``_rebuild_parameter``
  (``_with_state``), ``torch._tensor._rebuild_from_type_v2`` and
  ``torch.storage._load_from_bytes``, whose bytes (a legacy ``torch.save`` of one storage) are read
  with ``torch.load(..., weights_only=True)``; torch dtypes, ``torch.Size`` and ``torch.device``;
* NumPy scalars, dtypes and arrays (never of ``object`` dtype);
* ``torch.nn.modules.*`` classes -> :class:`PlainModule`, which records the pickled ``__dict__``.

Any other global is refused with :class:`SnapshotError`, one line naming it. TensorFlow-era pickles
(``dnnlib.tflib.network.Network``) and StyleGAN3 networks (NVlabs/stylegan3,
``training/networks_stylegan3.py``) are refused with their own messages.

:func:`load_snapshot` returns each network's weights as the flat ``state_dict()`` the reference
module would give (``mapping.fc0.weight``, ``synthesis.b4.const``, ``b4.fc.weight``, ...), its
class name and its constructor keyword arguments as plain Python; :func:`describe` turns the
latter into the architecture facts (with the defaults of ``training/networks.py`` for what is not
given) needed to build an equivalent network.
"""

from gankit.compat.stylegan2_pickle.architecture import (
    DISCRIMINATOR_DEFAULTS,
    GENERATOR_DEFAULTS,
    describe,
)
from gankit.compat.stylegan2_pickle.snapshot import (
    NETWORK_KEYS,
    Snapshot,
    SnapshotNetwork,
    load_snapshot,
)
from gankit.compat.stylegan2_pickle.unpickler import PersistentObject, PlainModule, SnapshotError

__all__ = [
    "DISCRIMINATOR_DEFAULTS",
    "GENERATOR_DEFAULTS",
    "NETWORK_KEYS",
    "PersistentObject",
    "PlainModule",
    "Snapshot",
    "SnapshotError",
    "SnapshotNetwork",
    "describe",
    "load_snapshot",
]
