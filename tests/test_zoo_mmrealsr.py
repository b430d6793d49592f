"""MM-RealSR: parity with spandrel 0.4.2 on random weights (spandrel's model returns (image, degrees): its descriptor
call takes the image), the estimated degrees themselves, the interactive override, detection round trips,
parameter count of the released configuration."""

from __future__ import annotations

import pytest
import torch
from zoo_parity import (
    check_variants_detect_as_themselves,
    compare_hyperparameters,
    full_config,
    meta_model,
    random_state,
)

import litesr
from litesr.detect import detect_architecture
from litesr.errors import ConfigError

CASES = [
    dict(num_feat=8, num_block=2, num_grow_ch=4, num_feats=(8, 16), num_blocks=(1, 2), downscales=(2, 1)),
    dict(num_feat=12, num_block=1, num_grow_ch=6, num_degradation=3, num_feats=(8, 8, 16), num_blocks=(2, 1, 1),
         downscales=(2, 2, 1)),
    dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1, num_grow_ch=4, num_feats=(4,), num_blocks=(1,),
         downscales=(1,)),
]


def _both(spandrel, config: dict, seed: int = 0):  # noqa: ANN202
    ours = litesr.create_model("mmrealsr", scale=4, **config).eval()
    state = random_state(ours, seed, std=0.1)
    ours.load_state_dict(state)
    descriptor = spandrel.ModelLoader().load_from_state_dict({k: v.clone() for k, v in state.items()})
    assert descriptor.architecture.id == "MMRealSR" and descriptor.scale == 4
    return ours, descriptor, state


@pytest.mark.parametrize("config", CASES, ids=["two-stages", "three-degradations", "gray-one-stage"])
def test_mmrealsr_matches_spandrel(spandrel, config: dict) -> None:
    ours, descriptor, state = _both(spandrel, config)
    reference = descriptor.model.eval()
    x = torch.rand(1, descriptor.input_channels, 17, 22, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # its default custom_degrees has two entries: pass one per degradation
        want, want_degrees = reference(x.clone(), custom_degrees=(None,) * len(ours.de_net.fc_degree))
        got = ours(x.clone())
        got_degrees = ours.degrees(x.clone())
    assert got.shape == want.shape == (1, x.shape[1], 68, 88)
    assert float(want.abs().max()) > 1e-3
    assert float((got - want).abs().max()) <= 1e-5
    assert torch.allclose(got_degrees, torch.stack(want_degrees, dim=1), atol=1e-6)

    matches = detect_architecture(state)
    assert [m.arch for m in matches] == ["mmrealsr"], matches
    assert full_config("mmrealsr", matches[0].config) == full_config("mmrealsr", ours.litesr_config)
    compare_hyperparameters(matches[0].config, reference.hyperparameters, {})


def test_custom_degrees_match_the_official_override(spandrel) -> None:
    ours, descriptor, _ = _both(spandrel, CASES[0], seed=2)
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    ours.custom_degrees = (None, 0.0)
    with torch.no_grad():
        want = descriptor.model.eval()(x.clone(), custom_degrees=(None, 0.0))[0]
        got = ours(x.clone())
        assert float((got - want).abs().max()) <= 1e-5
        ours.custom_degrees = (None, 1.0)
        assert float((ours(x.clone()) - want).abs().max()) > 1e-4  # the override does reach the output
    ours.custom_degrees = (0.5,)
    with pytest.raises(ConfigError, match="2 entries"):
        ours(x)


def test_released_configuration_parameter_count() -> None:
    """The released x4 configuration (the official options' network_g). No count is published in the paper notes
    at hand, so this pins what it builds: 52.49M, the RRDBNet (16.70M with its head) plus 7.08M of modulation and
    a 28.70M estimator."""
    model = meta_model("mmrealsr_x4", 4)  # shared with the detection check below
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in ("body", "am_list",
                                                                                          "de_net", "dd_embed")}
    assert sum(p.numel() for p in model.parameters()) == TOTAL
    assert counts == PARTS


TOTAL = 52_486_277
PARTS = {"body": 16_546_752, "am_list": 7_083_264, "de_net": 28_703_490, "dd_embed": 1_536}


def test_variants_detect_as_themselves() -> None:
    assert {"mmrealsr", "mmrealsr_x4"} <= set(check_variants_detect_as_themselves("mmrealsr"))


def test_only_x4() -> None:
    from litesr.archs.mmrealsr import MMRealSR

    with pytest.raises(ConfigError, match="x4 only"):
        MMRealSR(scale=2)
