"""Linear layers whose weights are packed once in oneDNN's blocked layout (CPU, fp32 or bf16).

``torch.nn.functional.linear`` on a CPU re-lays the weight out for oneDNN's kernel on every
call; for a decoder step's few rows that copy is a large share of the product, so the bf16
recipe and the int8 recipe's output heads pack their weights once at load
(docs/performance.md, "What makes it fast", has the measurements). This uses torch's private
``mkldnn`` ops (the ones torch.compile's CPU backend uses), probed before use.
"""

from __future__ import annotations

import functools

from ..errors import MusicStemsError
from . import cpu
from .pages import release_checkpoint_pages

__all__ = ["pack_linears_onednn", "onednn_packing_works", "onednn_linear", "PACKING_ROWS"]

#: Rows a song's decoder step multiplies at once (4 stems x guidance): the shape oneDNN packs
#: weights for. Any other row count gives the same results, only through a less tuned kernel.
PACKING_ROWS = 8


@functools.lru_cache(maxsize=None)
def onednn_packing_works(dtype) -> bool:
    """Whether this torch can pack a Linear's weight for oneDNN in ``dtype`` and multiply
    with it (torch's private ``mkldnn`` ops; absent or broken on some builds) -- and, for bf16,
    whether the CPU computes bf16 natively."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16 and not cpu.cpu_features()["bf16"]:
        return False
    try:
        weight = torch.linspace(-1, 1, 64 * 32).reshape(64, 32).to(dtype)
        x = torch.linspace(1, -1, 3 * 32).reshape(3, 32).to(dtype)
        packed = torch.ops.mkldnn._reorder_linear_weight(weight, PACKING_ROWS)
        out = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
        ref = torch.nn.functional.linear(x, weight)
        return bool(torch.allclose(out.float(), ref.float(), rtol=1e-2, atol=1e-2))
    except Exception:  # ops missing in this build
        return False


@functools.lru_cache(maxsize=1)
def onednn_linear():
    """The class of a Linear whose weight is packed once in oneDNN's blocked layout.

    In bf16 the kernel is the one ``F.linear`` calls, so a bias-free layer's (all of MusicGen's
    decoder) results are bit-identical; in fp32 ``F.linear`` takes MKL's kernel instead and the
    packed product differs in the last bits."""
    import torch

    class OneDNNLinear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear, rows: int):
            super().__init__()
            self.in_features = linear.in_features
            self.out_features = linear.out_features
            # a plain attribute, not a buffer: an opaque oneDNN tensor has no storage to move
            # or save, and this module lives on the CPU only
            self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows)
            self.bias = None if linear.bias is None else linear.bias.detach().clone()

        def forward(self, x):
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [],
                                                      "")

        def extra_repr(self) -> str:
            return (f"in_features={self.in_features}, out_features={self.out_features}, "
                    f"bias={self.bias is not None}, packed for oneDNN")

        def _save_to_state_dict(self, destination, prefix, keep_vars):
            # the packed weight has no storage to save: a checkpoint without it would load
            # as random weights, so refuse loudly instead
            raise MusicStemsError(
                f"{prefix.rstrip('.') or 'this layer'} holds a weight packed for oneDNN by "
                "musicstems' bf16/int8 CPU recipe, which cannot be saved; load the model with "
                "precision='fp32' to save it.")

    return OneDNNLinear


def pack_linears_onednn(module) -> int:
    """Replace, in place, every ``torch.nn.Linear`` inside ``module`` (a CPU model part in fp32
    or bf16) by one whose weight is packed for oneDNN (:func:`onednn_linear`), one layer at a
    time, handing each source weight's checkpoint pages back. A no-op where this torch cannot
    pack (then returns 0).

    Returns
    -------
    int
        How many layers were packed.
    """
    import torch

    places = [(parent, name) for parent in module.modules()
              for name, child in parent.named_children() if type(child) is torch.nn.Linear]
    if not places:
        return 0
    weight = getattr(*places[0]).weight
    if weight.dtype not in (torch.float32, torch.bfloat16) or weight.device.type != "cpu":
        return 0
    if not onednn_packing_works(weight.dtype):
        return 0
    del weight
    packed_class = onednn_linear()
    with torch.no_grad():
        for parent, name in places:
            # one layer at a time: its old weight is gone before the next is packed
            child = getattr(parent, name)
            setattr(parent, name, packed_class(child, PACKING_ROWS))
            release_checkpoint_pages([child.weight])
            del child
    return len(places)
