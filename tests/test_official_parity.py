"""Parity with the official PyTorch code: the same random weights give the same outputs (float64, max |diff| 1e-5).

The official repositories are read from outside this repo, never copied into it: ``$LITESR_OFFICIAL_DIR`` (default
``/work/.mirror``) holds one folder per repository named ``<owner>+<name>``, each a checkout or a git directory
(``repo``, ``repo/.git``). The few files a model needs are written to a temporary folder and imported from there;
a test skips, naming the repository, when it is absent. torchvision, matplotlib and basicsr's registry (imported but
unused by the network code) are stubbed.

Repositories: SHI-Labs/Cross-Scale-Non-Local-Attention (CSNLN), daitao/SAN (SAN, and its unchanged copies of
EDSR-PyTorch's EDSR/MDSR: the EDSR-PyTorch repository itself is too large to fetch here), LongguangWang/SMSR,
sunny2109/ShuffleMixer, yongliuy/DITN (DITN_Real; the paper form has no released code: its shared layers are
compared), eezkni/SSIU, and
yjn870/SRCNN-pytorch (SRCNN's own code is Caffe/MATLAB; this is the port the PyTorch world uses).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from litesr.registry import create_model

MIRRORS = Path(os.environ.get("LITESR_OFFICIAL_DIR", "/work/.mirror"))
TOLERANCE = 1e-5


def _read_official(repo: str, path: str) -> bytes:
    """The bytes of ``path`` in the official ``repo`` (owner/name), from a checkout or a git directory."""
    base = MIRRORS / repo.replace("/", "+")
    for tree in (base, base / "repo"):
        if (tree / path).is_file():
            return (tree / path).read_bytes()
    for git_dir in (base / "repo" / ".git", base / "repo", base / ".git"):
        if (git_dir / "HEAD").is_file():
            done = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"], capture_output=True)
            if done.returncode == 0:
                return done.stdout
    pytest.skip(f"official code of {repo} not found under {MIRRORS} (set LITESR_OFFICIAL_DIR to a folder holding "
                f"{repo.replace('/', '+')}/, a checkout or git directory, to run this parity test)")


def _stub(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


class _Registry:
    def register(self, *_args: object, **_kwargs: object):  # noqa: ANN201 - a decorator factory
        return lambda obj=None: obj if obj is not None else (lambda o: o)


@contextmanager
def official_modules(tmp_path: Path, repo: str, files: dict[str, str]) -> Iterator[None]:
    """Write ``files`` ({official path: path under tmp_path}) and make tmp_path importable for the ``with`` body;
    the top-level packages they define (``model``, ``utils`` ...) are removed from sys.modules before and after."""
    for source, dest in files.items():
        target = tmp_path / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_read_official(repo, source))
        for parent in target.relative_to(tmp_path).parents:  # package markers where the official tree has them
            if str(parent) != "." and not (tmp_path / parent / "__init__.py").exists():
                (tmp_path / parent / "__init__.py").write_text("")
    roots = {Path(dest).parts[0].removesuffix(".py") for dest in files.values()}
    from torchvision_stub import stub_torchvision

    stub_torchvision()
    tv = sys.modules["torchvision"]
    tv.utils = sys.modules.setdefault("torchvision.utils", _stub("torchvision.utils"))
    stubs = {"matplotlib": _stub("matplotlib"), "matplotlib.pyplot": _stub("matplotlib.pyplot"),
             "basicsr": _stub("basicsr"), "basicsr.utils": _stub("basicsr.utils"),
             "basicsr.utils.registry": _stub("basicsr.utils.registry", ARCH_REGISTRY=_Registry())}
    saved = {k: sys.modules.get(k) for k in stubs}

    def forget() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in roots:
                del sys.modules[name]

    forget()
    sys.modules.update(stubs)
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        forget()
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter and float buffer random (zero-initialised scales too), so no branch hides behind a zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]:
            tensor.copy_(torch.randn(tensor.shape, generator=g, dtype=tensor.dtype) * 0.1 + (tensor == 1) * 1.0)


def _compare(ours: torch.nn.Module, official: torch.nn.Module, x: torch.Tensor, *, skip_keys: tuple[str, ...] = (),
             dtype: torch.dtype = torch.float64, after_load: Callable[[torch.nn.Module], None] | None = None) -> float:
    """Load our random weights into the official model (strict, apart from ``skip_keys``: buffers both build the
    same way), run both in float64 eval mode on ``x``, return max |diff| and check it."""
    _randomise(ours)
    state = ours.state_dict()
    # nn.Module's own loader: EDSR-PyTorch models override load_state_dict with a lenient one.
    missing, unexpected = torch.nn.Module.load_state_dict(official, state, strict=False)
    assert not unexpected, f"keys the official model lacks: {unexpected[:5]}"
    assert all(k.startswith(skip_keys) for k in missing) if skip_keys else not missing, missing[:5]
    ours, official = ours.to(dtype).eval(), official.to(dtype).eval()
    if after_load is not None:
        after_load(official)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # SAN's MPNCOV makes its identity matrices with the default dtype
    try:
        with torch.no_grad():
            a, b = ours(x.to(dtype)), official(x.to(dtype))
    finally:
        torch.set_default_dtype(previous)
    assert a.shape == b.shape
    diff = float((a - b).abs().max())
    print(f"max |diff| = {diff:.3e} (output max {float(b.abs().max()):.3g})")
    # float32 (where the official code forces it) is held to the same 1e-5, relative to the output's magnitude.
    scale = 1.0 if dtype == torch.float64 else max(1.0, float(b.abs().max()))
    assert diff < TOLERANCE * scale
    return diff


class Args:
    """The attribute bag EDSR-PyTorch-style ``make_model(args)`` reads."""

    def __init__(self, **values: object) -> None:
        defaults = {"rgb_range": 255, "n_colors": 3, "res_scale": 1.0, "dilation": False, "precision": "single"}
        self.__dict__.update({**defaults, **values})


def _x(c: int = 3, h: int = 20, w: int = 24, scale: float = 255.0) -> torch.Tensor:
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(1)) * scale


CSNLN_REPO = "SHI-Labs/Cross-Scale-Non-Local-Attention"
# SAN ships EDSR-PyTorch's edsr.py/mdsr.py/common.py unchanged (CSNLN's copy of edsr.py was edited: PReLU).
EDSR_REPO = "daitao/SAN"
EDSR_FILES = {"TestCode/code/model/common.py": "model/common.py", "TestCode/code/model/edsr.py": "model/edsr.py",
              "TestCode/code/model/mdsr.py": "model/mdsr.py"}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_matches_official(tmp_path: Path, scale: int) -> None:
    with official_modules(tmp_path, EDSR_REPO, EDSR_FILES):
        edsr = importlib.import_module("model.edsr")
        official = edsr.make_model(Args(n_resblocks=2, n_feats=16, scale=[scale], res_scale=0.1))
        ours = create_model("edsr", scale=scale, n_resblocks=2, n_feats=16, res_scale=0.1)
        _compare(ours, official, _x(), skip_keys=("sub_mean.", "add_mean."))


def test_mdsr_matches_official_at_every_scale(tmp_path: Path) -> None:
    with official_modules(tmp_path, EDSR_REPO, EDSR_FILES):
        mdsr = importlib.import_module("model.mdsr")
        official = mdsr.make_model(Args(n_resblocks=2, n_feats=16, scale=[2, 3, 4]))
        ours = create_model("mdsr", scale=2, n_resblocks=2, n_feats=16)
        for index, scale in enumerate((2, 3, 4)):
            ours.set_scale(scale)
            official.set_scale(index)
            _compare(ours, official, _x(), skip_keys=("sub_mean.", "add_mean."))


def test_csnln_matches_official(tmp_path: Path) -> None:
    files = {"src/model/common.py": "model/common.py", "src/model/csnln.py": "model/csnln.py",
             "src/model/attention.py": "model/attention.py", "src/model/utils/tools.py": "utils/tools.py"}
    with official_modules(tmp_path, CSNLN_REPO, files):
        csnln = importlib.import_module("model.csnln")
        # The official attention layers are built for 128 channels whatever n_feats says: the paper's width it is.
        official = csnln.make_model(Args(n_feats=128, depth=2, scale=[2]))
        ours = create_model("csnln", scale=2, n_feats=128, depth=2)
        _compare(ours, official, _x(h=16, w=16), skip_keys=("sub_mean.", "add_mean."))


def test_san_matches_official(tmp_path: Path) -> None:
    root = "TestCode/code/model/"
    files = {f"{root}common.py": "model/common.py", f"{root}san.py": "model/san.py",
             f"{root}MPNCOV/python/MPNCOV.py": "model/MPNCOV/python/MPNCOV.py"}
    with official_modules(tmp_path, "daitao/SAN", files):
        san = importlib.import_module("model.san")
        official = san.make_model(Args(n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4, scale=[2]))
        ours = create_model("san", scale=2, n_resgroups=2, n_resblocks=2, n_feats=16, reduction=4)
        _compare(ours, official, _x(h=16, w=16), skip_keys=("sub_mean.", "add_mean."))


def test_smsr_matches_official_in_eval_mode(tmp_path: Path) -> None:
    files = {"model/common.py": "model/common.py", "model/smsr.py": "model/smsr.py"}
    with official_modules(tmp_path, "LongguangWang/SMSR", files):
        smsr = importlib.import_module("model.smsr")
        # The official collect layer is built for 64 channels (5 x 64 in): the paper's width it is.
        official = smsr.make_model(Args(n_feats=64, scale=[2]))
        ours = create_model("smsr", scale=2, n_feats=64)
        # Its sparse inference path casts the spatial mask with .float(): float32 it is.
        # Its test code calls each SMB's _prepare() (channel masks rounded, sparse indices) once the weights are in.
        def prepare(model: torch.nn.Module) -> None:
            for module in model.modules():
                if hasattr(module, "_prepare"):
                    module._prepare()

        _compare(ours, official, _x(), skip_keys=("sub_mean.", "add_mean."), dtype=torch.float32, after_load=prepare)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shufflemixer_matches_official(tmp_path: Path, scale: int) -> None:
    files = {"basicsr/archs/shufflemixer_arch.py": "shufflemixer_arch.py"}
    with official_modules(tmp_path, "sunny2109/ShuffleMixer", files):
        arch = importlib.import_module("shufflemixer_arch")
        official = arch.ShuffleMixer(n_feats=16, kernel_size=3, n_blocks=2, mlp_ratio=2, upscaling_factor=scale)
        ours = create_model("shufflemixer", scale=scale, n_feats=16, kernel_size=3, n_blocks=2)
        _compare(ours, official, _x(scale=1.0))


def test_ditn_real_matches_official(tmp_path: Path) -> None:
    with official_modules(tmp_path, "yongliuy/DITN", {"models/DITN_Real.py": "ditn_official.py"}):
        arch = importlib.import_module("ditn_official")
        official = arch.DITN_Real(dim=12, ITL_blocks=2, SAL_blocks=2, UFONE_blocks=1, patch_size=8, upscale=4)
        ours = create_model("ditn_real", scale=4, dim=12, itl_blocks=2, sal_blocks=2, ufone_blocks=1, patch_size=8)
        _compare(ours, official, _x(h=16, w=24, scale=1.0))


def test_ditn_paper_form_layers_match_the_official_ones(tmp_path: Path) -> None:
    """The paper's DITN has no released network; its layers (WithBias LayerNorm, ISA, SDA, gated FFN) are the
    released file's, so each is compared on shared weights."""
    from litesr.archs import ditn as ours_module
    from litesr.archs.blocks import BodyLayerNorm

    with official_modules(tmp_path, "yongliuy/DITN", {"models/DITN_Real.py": "ditn_official.py"}):
        arch = importlib.import_module("ditn_official")
        pairs = [(BodyLayerNorm(12, eps=1e-5), arch.LayerNorm(12, "WithBias")),  # ditn.py's norm1/norm2
                 (ours_module.ISA(12, bias=False), arch.ISA(12, bias=False)),
                 (ours_module.SDA(12), arch.SDA(12)),
                 (ours_module.FeedForward(12, 2.0, bias=False), arch.FeedForward(12, 2, bias=False))]
        for ours, official in pairs:
            x = _x(c=12, h=8, w=8, scale=1.0)
            _compare(ours, official, x)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_ssiu_matches_official(tmp_path: Path, scale: int) -> None:
    with official_modules(tmp_path, "eezkni/SSIU", {"models/SSUFSR_network.py": "ssiu_official.py"}):
        arch = importlib.import_module("ssiu_official")
        official = arch.SSUFSRNet(Args(n_feats=16, n_blocks=3, scale=scale, colors=3))
        ours = create_model("ssiu", scale=scale, n_feats=16, n_blocks=3)
        _compare(ours, official, _x(h=16, w=16, scale=1.0))


def test_srcnn_matches_the_pytorch_port(tmp_path: Path) -> None:
    """yjn870/SRCNN-pytorch runs on the bicubic-upsampled Y; ours upsamples inside, so it gets the same input."""
    from litesr.imresize import imresize

    with official_modules(tmp_path, "yjn870/SRCNN-pytorch", {"models.py": "srcnn_port.py"}):
        arch = importlib.import_module("srcnn_port")
        official = arch.SRCNN(num_channels=1)
        ours = create_model("srcnn", scale=3)
        x = _x(c=1, scale=1.0)

        class Upsampled(torch.nn.Module):
            def __init__(self, net: torch.nn.Module) -> None:
                super().__init__()
                self.net = net

            def forward(self, lr: torch.Tensor) -> torch.Tensor:
                return self.net(imresize(lr, scale=3))

        _randomise(ours)
        official.load_state_dict(ours.state_dict())
        wrapped = Upsampled(official)
        with torch.no_grad():
            diff = float((ours.double().eval()(x.double()) - wrapped.double().eval()(x.double())).abs().max())
        print(f"max |diff| = {diff:.3e}")
        assert diff < TOLERANCE
