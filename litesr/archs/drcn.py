"""DRCN: Deeply-Recursive Convolutional Network for Image Super-Resolution (Kim, Lee, Lee, CVPR 2016).

On the bicubic-upsampled Y channel (as VDSR, one model for x2/x3/x4): an embedding net (two 3x3 convs, ReLU), an
inference net of ONE 3x3 conv + ReLU applied ``recursions`` times (D = 16, shared weights), and a reconstruction net
(two 3x3 convs) shared by every recursion. Each recursion d gives a prediction y_d = recon(H_d) + x (the skip
connection); the output is their learned weighted sum sum_d w_d y_d (weights initialised to 1 / D).

Recursive supervision (the paper's loss, Sec. 3.3):
alpha / D * sum_d ||y - y_d||^2 / 2 + (1 - alpha) ||y - y_hat||^2 / 2, alpha decayed from 1 towards 0 during
training; :meth:`DRCN.recursive_supervision_loss` computes it from the intermediate predictions kept in
``model.recursion_outputs`` by the last training forward.

Parameters: the paper's 1,774,080 are the convolution weights (1 -> 256, three 256 -> 256, 256 -> 1, all 3x3);
with biases and the 16 fusion weights the model has 1,775,121. The authors' code is MatConvNet; the key names here
(``embedding``, ``inference``, ``reconstruction``, ``recursion_weights``) are litesr's own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..imresize import imresize
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel


def _detect(sd: StateDict) -> dict | None:
    if "inference.0.weight" not in sd or "recursion_weights" not in sd or "embedding.0.weight" not in sd:
        return None
    n_feats, num_channels = sd["embedding.0.weight"].shape[:2]
    return {"scale": 2, "num_channels": int(num_channels), "n_feats": int(n_feats),
            "recursions": int(sd["recursion_weights"].shape[0])}


@register_arch("drcn", scales=(2, 3, 4), detect=_detect, paper="Kim et al., CVPR 2016",
               tiny={"n_feats": 8, "recursions": 3})
class DRCN(SRModel):
    """DRCN: one recursive 3x3 conv (16 recursions, 256 channels), skip connection, recursive supervision; Y."""

    multi_scale = True

    def __init__(self, scale: int = 2, num_channels: int = 1, n_feats: int = 256, recursions: int = 16) -> None:
        super().__init__()
        if recursions < 1:
            raise ValueError(f"DRCN needs at least one recursion, not {recursions}")
        self.scale = scale
        self.color_space = "y" if num_channels == 1 else "rgb"
        self.embedding = nn.Sequential(nn.Conv2d(num_channels, n_feats, 3, padding=1), nn.ReLU(inplace=True),
                                       nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True))
        self.inference = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True))
        self.reconstruction = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True),
                                            nn.Conv2d(n_feats, num_channels, 3, padding=1))
        self.recursion_weights = nn.Parameter(torch.full((recursions,), 1.0 / recursions))
        self.recursion_outputs: list[Tensor] = []

    def predictions(self, x: Tensor, scale: int | None = None) -> list[Tensor]:
        """The D intermediate predictions y_d (each recon(H_d) + the upsampled input)."""
        upsampled = imresize(x, scale=scale or self.scale)
        h = self.embedding(upsampled)
        outs = []
        for _ in range(self.recursion_weights.shape[0]):
            h = self.inference(h)
            outs.append(self.reconstruction(h) + upsampled)
        return outs

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        outs = self.predictions(x, scale)
        self.recursion_outputs = outs if self.training else []
        stacked = torch.stack(outs, 0)
        return (stacked * self.recursion_weights.view(-1, *([1] * (stacked.dim() - 1)))).sum(0)

    def recursive_supervision_loss(self, output: Tensor, target: Tensor, alpha: float) -> Tensor:
        """The paper's loss from the last training forward: alpha * mean_d MSE(y_d) / 2 + (1 - alpha) MSE(out) / 2."""
        if not self.recursion_outputs:
            raise RuntimeError("recursive_supervision_loss needs a training-mode forward first")
        intermediate = torch.stack([((y - target) ** 2).mean() for y in self.recursion_outputs]).mean()
        return 0.5 * alpha * intermediate + 0.5 * (1.0 - alpha) * ((output - target) ** 2).mean()


register_variant("drcn", "drcn", {}, description="DRCN (16 recursions of one 256-channel conv, Y; one model x2-x4)",
                 paper_params={2: 1_774_080, 3: 1_774_080, 4: 1_774_080})
