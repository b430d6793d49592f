"""Training and loading of the SR3-style model: HR patches, their MATLAB-bicubic LR, L1 on the predicted noise."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_safetensors
from ..errors import ConfigError, DatasetError, LitesrError
from ..imresize import imresize
from .common import Deadline, TextProgress
from .sr3 import SR3_TINY, Diffusion, SR3UNet, UNetConfig, make_betas


@dataclass
class SR3TrainConfig:
    scale: int = 4
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(**asdict(SR3_TINY)))
    schedule: str = "linear"
    num_steps: int = 2000  # SR3's linear schedule: 2000 steps, 1e-6 .. 1e-2
    linear_start: float = 1e-6
    linear_end: float = 1e-2
    patch_size: int = 32  # HR side (SR3 x4: 128)
    batch_size: int = 8
    iterations: int = 1000
    learning_rate: float = 1e-4  # SR3's Adam rate
    seed: int = 0

    def diffusion_dict(self) -> dict:
        return {"schedule": self.schedule, "num_steps": self.num_steps, "linear_start": self.linear_start,
                "linear_end": self.linear_end}


def make_diffusion(d: dict) -> Diffusion:
    return Diffusion(make_betas(d["schedule"], int(d["num_steps"]), d["linear_start"], d["linear_end"]))


def _load_images(hr_dir: Path, patch: int) -> list[torch.Tensor]:
    from ..data.train import find_images, read_rgb_uint8

    images = [torch.from_numpy(read_rgb_uint8(p).copy()).permute(2, 0, 1).float() / 255 for p in find_images(hr_dir)]
    images = [im for im in images if min(im.shape[-2:]) >= patch]
    if not images:
        raise DatasetError(f"{hr_dir}: no image of at least {patch}x{patch} pixels to train on")
    return images


def train_sr3(hr_dir: str | os.PathLike, out: str | os.PathLike, cfg: SR3TrainConfig, *,
              time_budget: float | None = None, progress: bool = False, device: str = "cpu") -> dict:
    """Train from scratch on HR images in ``hr_dir`` and write ``out`` (.safetensors with the config in its metadata).

    Stops at ``cfg.iterations`` or after ``time_budget`` seconds; returns a summary (iterations, last mean loss)."""
    if cfg.patch_size % (2 ** (len(cfg.unet.channel_multiplier) - 1)) or cfg.patch_size % cfg.scale:
        raise ConfigError(f"patch_size {cfg.patch_size} must be a multiple of the scale and of the U-Net's "
                          f"{2 ** (len(cfg.unet.channel_multiplier) - 1)}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    images = _load_images(Path(hr_dir), cfg.patch_size)
    net = SR3UNet(cfg.unet).to(device)
    diffusion = make_diffusion(cfg.diffusion_dict())
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    deadline = Deadline(time_budget)
    bar = TextProgress("sr3", cfg.iterations, enabled=progress)
    generator = torch.Generator().manual_seed(cfg.seed)
    p, s = cfg.patch_size, cfg.scale
    losses: list[float] = []
    it = 0
    for it in range(1, cfg.iterations + 1):
        hr = torch.stack([_random_patch(images[int(rng.integers(len(images)))], p, rng) for _ in range(cfg.batch_size)])
        lr = imresize(hr, 1 / s).clamp(0, 1)
        cond = imresize(lr, s).clamp(0, 1) * 2 - 1
        x0 = hr * 2 - 1
        x_noisy, gamma, noise = diffusion.training_pair(x0, generator)
        net.train()
        pred = net(cond.to(device), x_noisy.to(device), gamma.to(device))
        loss = (pred - noise.to(device)).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        bar.update(it, f"l1 {np.mean(losses[-50:]):.4f}")
        if deadline.passed():
            break
    bar.close()
    save_sr3(net, cfg, out)
    return {"iterations": it, "loss": float(np.mean(losses[-50:])), "seconds": deadline.elapsed,
            "parameters": sum(q.numel() for q in net.parameters())}


def _random_patch(image: torch.Tensor, p: int, rng: np.random.Generator) -> torch.Tensor:
    top = int(rng.integers(0, image.shape[1] - p + 1))
    left = int(rng.integers(0, image.shape[2] - p + 1))
    patch = image[:, top:top + p, left:left + p]
    if rng.random() < 0.5:
        patch = patch.flip(-1)
    return torch.rot90(patch, int(rng.integers(4)), dims=(-2, -1))


def save_sr3(net: SR3UNet, cfg: SR3TrainConfig, out: str | os.PathLike) -> None:
    meta = {"litesr_sr3": json.dumps({"unet": asdict(net.config), "diffusion": cfg.diffusion_dict(),
                                      "scale": cfg.scale})}
    save_safetensors({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, out, metadata=meta)


def load_sr3(path: str | os.PathLike) -> tuple[SR3UNet, Diffusion, int]:
    """Network, schedule and scale from a file written by :func:`train_sr3`."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get("litesr_sr3")
        state = load_file(str(path))
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise LitesrError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    if meta is None:
        raise LitesrError(f"{path}: not an SR3 checkpoint written by litesr (no litesr_sr3 metadata)")
    info = json.loads(meta)
    net = SR3UNet(UNetConfig(**info["unet"]))
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise LitesrError(f"{path}: weights do not match the stored U-Net ({len(missing)} missing, "
                          f"{len(unexpected)} unexpected tensors)")
    return net, make_diffusion(info["diffusion"]), int(info["scale"])


def patch_multiple(cfg: SR3TrainConfig) -> int:
    return math.lcm(cfg.scale, 2 ** (len(cfg.unet.channel_multiplier) - 1))
