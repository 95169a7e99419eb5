"""PatchNCE (Park et al. 2020, CUT): patch features, their projection heads, and the loss.

``PatchHeads`` holds one head per tapped encoder layer — Linear(C→n)–ReLU–Linear(n→n) followed by
L2 normalisation — built from the channel counts of the first batch's features, as CUT's
``PatchSampleF`` is. ``sample`` picks ``num_patches`` positions per layer, the same positions for
every image of the batch, and reuses them for the other image of a pair so that patch i of the
output is compared with patch i of the input.

``patch_nce_loss`` is an InfoNCE over patches: for each output patch, the input patch at the same
position is the positive and the other sampled patches *of the same image* are the negatives
(CUT's default, ``nce_includes_all_negatives_from_minibatch=False``), at temperature τ = 0.07.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.nets.norms import init_translation_weights


class PatchHeads(nn.Module):
    """One projection head per encoder layer; ``channels`` are the layers' feature widths."""

    def __init__(self, channels: list[int], nc: int = 256, gain: float = 0.02) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in channels
        )
        init_translation_weights(self, "normal", gain)

    def sample(
        self, feats: list[Tensor], num_patches: int, ids: list[Tensor] | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Projected, L2-normalised patch features (N·P, nc) per layer, and the positions used."""
        out, used = [], []
        for k, (feat, head) in enumerate(zip(feats, self.heads, strict=True)):
            flat = feat.flatten(2).transpose(1, 2)  # (N, H·W, C)
            if ids is None:
                n = min(num_patches, flat.shape[1])
                pos = torch.randperm(flat.shape[1], device=feat.device)[:n]
            else:
                pos = ids[k]
            x = head(flat[:, pos].flatten(0, 1))
            out.append(F.normalize(x, dim=1))
            used.append(pos)
        return out, used


def patch_nce_loss(q: Tensor, k: Tensor, batch: int, tau: float = 0.07) -> Tensor:
    """InfoNCE of output patches ``q`` against input patches ``k``, both (N·P, C); (N·P,) losses.

    Logits: the positive q_i·k_i, then q_i·k_j for the other patches j of the same image (the
    diagonal, the positive itself, masked out), divided by τ; cross-entropy with target 0.
    """
    k = k.detach()
    pos = (q * k).sum(1, keepdim=True)
    qb, kb = q.view(batch, -1, q.shape[1]), k.view(batch, -1, k.shape[1])
    neg = torch.bmm(qb, kb.transpose(1, 2))  # (N, P, P)
    eye = torch.eye(neg.shape[1], dtype=torch.bool, device=q.device)
    neg = neg.masked_fill(eye, -10.0).flatten(0, 1)
    logits = torch.cat([pos, neg], 1) / tau
    target = torch.zeros(len(logits), dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target, reduction="none")
