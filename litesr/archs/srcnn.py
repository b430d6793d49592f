"""SRCNN: Image Super-Resolution Using Deep Convolutional Networks (Dong et al., ECCV 2014 / TPAMI 2016).

Three convolutions on the bicubic-upsampled image: patch extraction (f1 x f1, n1 filters), non-linear mapping
(f2 x f2, n2 filters) and reconstruction (f3 x f3). The paper's base model is 9-1-5 (n1 = 64, n2 = 32) on the Y
channel; the TPAMI version's best is 9-5-5. The authors released Caffe/MATLAB weights only; state-dict names follow
the common PyTorch port (yjn870/SRCNN-pytorch ``models.py``): ``conv1``, ``conv2``, ``conv3``, 'same' padding so the
output has the size of the upsampled input.

Every litesr model maps LR -> HR, so the bicubic upsampling (MATLAB ``imresize``) happens inside ``forward``. The
convolutions do not depend on the scale, hence one network serves any scale (``multi_scale``), although the paper
trains one network per scale.

Parameter counts on Y: 9-1-5 has 8,129 (the "8K" of the IMDN table), 9-5-5 has 57,281 (the "57K" of SAFMN's).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..imresize import imresize
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel


def _detect(sd: StateDict) -> dict | None:
    if set(sd) != {f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}:
        return None
    n1, num_channels, f1, _ = sd["conv1.weight"].shape
    n2, _, f2, _ = sd["conv2.weight"].shape
    f3 = sd["conv3.weight"].shape[-1]
    return {"scale": 3, "num_channels": num_channels, "n1": n1, "n2": n2, "f1": f1, "f2": f2, "f3": f3}


@register_arch("srcnn", scales=(2, 3, 4), detect=_detect, paper="Dong et al., ECCV 2014 / TPAMI 2016",
               tiny={"n1": 8, "n2": 4})
class SRCNN(SRModel):
    """SRCNN: three convolutions on the bicubic-upsampled image (Y channel by default)."""

    multi_scale = True

    def __init__(self, scale: int = 3, num_channels: int = 1, n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 5,
                 f3: int = 5) -> None:
        super().__init__()
        self.scale = scale
        self.color_space = "y" if num_channels == 1 else "rgb"
        self.conv1 = nn.Conv2d(num_channels, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, num_channels, f3, padding=f3 // 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        upsampled = imresize(x, scale=scale or self.scale)
        return self.conv3(self.relu(self.conv2(self.relu(self.conv1(upsampled)))))


register_variant("srcnn_915", "srcnn", {"f2": 1}, description="SRCNN 9-1-5 on Y (the ECCV 2014 base model)",
                 paper_params={2: 8_000, 3: 8_000, 4: 8_000})
# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_SRCNN_PUBLISHED = {
    2: {"Set5": (36.66, 0.9542), "Set14": (32.45, 0.9067), "B100": (31.36, 0.8879), "Urban100": (29.50, 0.8946),
        "Manga109": (35.60, 0.9663)},
    3: {"Set5": (32.75, 0.9090), "Set14": (29.30, 0.8215), "B100": (28.41, 0.7863), "Urban100": (26.24, 0.7989),
        "Manga109": (30.48, 0.9117)},
    4: {"Set5": (30.48, 0.8628), "Set14": (27.50, 0.7513), "B100": (26.90, 0.7101), "Urban100": (24.52, 0.7221),
        "Manga109": (27.58, 0.8555)},
}
register_variant("srcnn", "srcnn", {}, description="SRCNN 9-5-5 on Y (TPAMI 2016)"
                 " [published: RCAN; Mult-Adds: SAFMN]",
                 paper_params={2: 57_000, 3: 57_000, 4: 57_000},
                 paper_psnr=_SRCNN_PUBLISHED, paper_macs={2: 53, 3: 53, 4: 53})
register_variant("srcnn_rgb", "srcnn", {"num_channels": 3}, description="SRCNN 9-5-5 on RGB (TPAMI 2016, Sec. 5.4)")
