"""Every registered architecture and variant, driven by the registry alone: a new architecture module is covered here
(and by tests/test_zoo_train.py, which trains each one) without an edit to any test.

Per architecture, with its registered ``tiny`` configuration: a round trip through safetensors that auto-detection
reads back as the same architecture, configuration and output; odd input sizes through the engine's run path (which
pads to the declared size multiple); a declared contract that matches what the model really does. Per variant: each
named configuration, built on the meta device at every scale, is detected as its own architecture only; the parameter
count equals the paper's, to the rounding the paper prints. What is specific to one architecture (parity with official
code or spandrel, official checkpoints, re-parameterisation) lives in that architecture's own test file.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

import litesr
from litesr.descriptor import describe
from litesr.errors import ConfigError
from litesr.forward import run_model
from litesr.registry import all_archs, all_variants, count_parameters, create_model

ARCHS = sorted(all_archs())
VARIANTS = sorted(all_variants())
PAPER_COUNTS = [(name, scale, count) for name, v in sorted(all_variants().items())
                for scale, count in sorted(v.paper_params.items())]


def _randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Small noise in every trainable parameter: a wrong key mapping or layer order then changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and p.is_floating_point():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def _scale_of(arch: str) -> int:
    scales = all_archs()[arch].scales
    return 2 if 2 in scales else scales[0]


def _tiny(arch: str) -> torch.nn.Module:
    spec = all_archs()[arch]
    return create_model(arch, scale=_scale_of(arch), **spec.tiny).eval()


def _input(model: torch.nn.Module, h: int, w: int) -> torch.Tensor:
    """An RGB image in [0, 1]: the run path converts it to what the model reads (Y, [0, 255] ...)."""
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))


def _defaults(arch: str) -> dict:
    params = inspect.signature(all_archs()[arch].builder).parameters
    return {k: p.default for k, p in params.items() if k != "scale" and p.default is not inspect.Parameter.empty}


def _saved_tiny(arch: str, tmp_path: Path, *, identity: bool) -> tuple[torch.nn.Module, Path]:
    model = _randomise(_tiny(arch))
    if count_parameters(model) == 0:
        pytest.skip(f"{arch} has no parameters: nothing to save")
    path = tmp_path / f"{arch}.safetensors"
    d = describe(model)
    metadata = {"arch": d.arch, "config": json.dumps(dict(d.metadata()["config"]))} if identity else None
    litesr.save_safetensors(model.state_dict(), path, metadata=metadata)
    return model, path


def _full_config(arch: str, config: dict) -> dict:
    """Constructor defaults filled in, as JSON would store it (tuples read back as lists)."""
    return json.loads(json.dumps({**_defaults(arch), **config}, default=str))


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_round_trips_with_its_identity(arch: str, tmp_path: Path) -> None:
    """Saved with litesr's identity metadata, a model loads back as the same network: same output, bit for bit."""
    model, path = _saved_tiny(arch, tmp_path, identity=True)
    loaded = litesr.load_model(path)
    assert describe(loaded).arch == arch
    assert _full_config(arch, describe(loaded).config) == _full_config(arch, describe(model).config)
    x = _input(model, 16, 16)
    with torch.no_grad():
        want, got = run_model(model, x), run_model(loaded.eval(), x)
    assert float(want.std()) > 0  # a constant image would hide a wrong mapping
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_is_detected_from_bare_tensors(arch: str, tmp_path: Path) -> None:
    """Plain tensors, no metadata: detection names the architecture and scale and builds a network every tensor fits
    (load_model loads strictly). Options the tensors cannot show (attention heads, window sizes of some designs)
    take the builder's defaults, so the output is compared only when every option was read back."""
    if all_archs()[arch].detect is None:
        pytest.skip(f"{arch} is registered without a detector (it is built, never read from a file)")
    model, path = _saved_tiny(arch, tmp_path, identity=False)
    d = describe(model)
    loaded = litesr.load_model(path, scale=d.scale)
    got = describe(loaded)
    assert (got.arch, got.scale) == (arch, d.scale)
    assert {k: tuple(v.shape) for k, v in loaded.state_dict().items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}
    if _full_config(arch, got.config) == _full_config(arch, d.config):
        x = _input(model, 16, 16)
        with torch.no_grad():
            torch.testing.assert_close(run_model(loaded.eval(), x), run_model(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_odd_input_sizes_give_scaled_outputs(arch: str) -> None:
    """The declared size rule is complete: the run path pads what the model needs and crops back exactly."""
    model = _tiny(arch)
    d = describe(model)
    for h, w in ((13, 17),):
        with torch.no_grad():
            out = run_model(model, _input(model, h, w))
        assert out.shape == (1, 3, h * d.scale, w * d.scale), (arch, h, w)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_detects_as_its_own_architecture(name: str) -> None:
    variant = all_variants()[name]
    spec = all_archs()[variant.arch]
    if spec.detect is None:
        pytest.skip(f"{variant.arch} is registered without a detector")
    checked = 0
    for scale in spec.scales:
        try:
            with torch.device("meta"):
                model = create_model(name, scale=scale)
        except ConfigError:
            continue  # a variant may support fewer scales than its architecture (Real-CUGAN fast: x2 only)
        if count_parameters(model) == 0:
            pytest.skip(f"{name} has no parameters")
        matches = litesr.detect_architecture(model.state_dict())
        assert [m.arch for m in matches] == [variant.arch], (name, scale, [m.describe() for m in matches])
        checked += 1
    assert checked, f"{name} builds at none of {spec.scales}"


# Papers count parameters their own way (SwinIR and ELAN leave out position tables or masks, SMSR its mask logits) and
# round to 2-3 digits; each architecture's own test file checks its exact rule. Here every variant, including those
# added later, must be within 8% of its paper: a wrong width, depth or upsampler is far outside that.
PAPER_TOLERANCE = 0.08


@pytest.mark.parametrize(("name", "scale", "published"), PAPER_COUNTS)
def test_parameter_count_equals_the_paper(name: str, scale: int, published: int) -> None:
    variant = all_variants()[name]
    spec = all_archs()[variant.arch]
    # Re-parameterisable models (ECBSR, ETDS, SPAN ...) are counted by their papers in the deployed form.
    form = {"deploy": True} if "deploy" in inspect.signature(spec.builder).parameters else {}
    with torch.device("meta"):
        model = create_model(name, scale=scale, **form)
    count = count_parameters(model)
    assert abs(count - published) <= PAPER_TOLERANCE * published, (name, scale, count, published)


def test_the_registry_drives_these_tests() -> None:
    """Not vacuous: the lists above come from a populated registry, including paper counts."""
    assert {"ssiu", "imdn", "rlfn", "swinir", "hat"} <= set(ARCHS)
    assert len(PAPER_COUNTS) > 50
