"""Write docs/spandrel_coverage.md: every super-resolution architecture of spandrel 0.4.2 and whether litesr loads
it, plus litesr's own architectures. The status comes from the two registries, so the page stays true:

    python scripts/spandrel_coverage.py            # rewrite the page
    python scripts/spandrel_coverage.py --check    # exit 1 when the page is out of date

spandrel's purposes are read from its sources (each architecture's ``purpose=`` literals): an architecture counts as
SR when one of them is ``"SR"``. Needs spandrel installed (``pip install --no-deps spandrel==0.4.2``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "spandrel_coverage.md"
sys.path.insert(0, str(REPO / "tests"))

# spandrel architecture id -> the litesr architectures that read its checkpoints. An id whose names are not all
# registered yet shows as "not yet"; edit here when adding one (the status itself is computed, never written by hand).
LITESR_NAMES: dict[str, tuple[str, ...]] = {
    "ATD": ("atd",), "AuraSR": ("aurasr",), "CRAFT": ("craft",), "Compact": ("compact",), "DAT": ("dat",),
    "DCTLSA": ("dctlsa",), "DITN": ("ditn_real",), "DRCT": ("drct",), "ESRGAN": ("esrgan",), "FDAT": ("fdat",),
    "GRL": ("grl",), "HAT": ("hat",), "IPT": ("ipt",), "MMRealSR": ("mmrealsr",), "MoESR": ("moesr",),
    "MoSR": ("mosr",), "OmniSR": ("omnisr",), "PLKSR": ("plksr",), "RCAN": ("rcan",), "RGT": ("rgt",),
    "RealCUGAN": ("realcugan",), "SAFMN": ("safmn",), "SPAN": ("span",), "SeemoRe": ("seemore",),
    "SwiftSRGAN": ("swiftsrgan",), "Swin2SR": ("swin2sr",), "SwinIR": ("swinir",),
}
# Issue 21 splits the work: the transformer half is another helper's (their rows flip once registered).
TRANSFORMER_HALF = {"HAT", "DAT", "ATD", "SRFormer", "DRCT", "RGT", "CRAFT", "GRL"}
NOT_IN_ISSUE_21 = {"AuraSR", "MMRealSR", "PLKSR", "SeemoRe"}
# Why an architecture is still missing, where that was decided (shown instead of the generic note while it is).
NOT_DONE_REASONS = {
    "AuraSR": "not done: a GigaGAN-style U-Net (fal.ai says 600M parameters; a style network, adaptive "
              "kernel-mixing convs, linear and full attention, checkerboard tile merging in its forward); left for a "
              "follow-up",
}
# spandrel's restoration-only architectures (not rows of the table) whose checkpoints litesr also reads.
RESTORATION_ALSO_READ: dict[str, tuple[str, ...]] = {"SAFMNBCIE": ("safmn_bcie",)}


def _spandrel():  # noqa: ANN202 - the module
    from torchvision_stub import stub_torchvision

    stub_torchvision()  # spandrel imports torchvision, which does not install with the pinned CPU torch
    import spandrel

    return spandrel


def spandrel_sr_architectures() -> list[tuple[str, str]]:
    """(id, purposes) of spandrel's registered architectures whose purpose can be SR, sorted by id."""
    spandrel = _spandrel()
    from spandrel import MAIN_REGISTRY

    root = Path(spandrel.__file__).parent / "architectures"
    out = []
    for support in MAIN_REGISTRY.architectures():
        arch_id = support.architecture.id
        source = (root / arch_id / "__init__.py").read_text()
        purposes = sorted(set(re.findall(r'"(SR|FaceSR|Restoration|Inpainting)"', source)))
        if "SR" in purposes:
            out.append((arch_id, "/".join(purposes)))
    return sorted(out, key=lambda r: r[0].lower())


def render() -> str:
    spandrel = _spandrel()
    from litesr.registry import all_archs

    archs = all_archs()
    rows, covered = [], set()
    sr = spandrel_sr_architectures()
    for arch_id, purposes in sr:
        names = LITESR_NAMES.get(arch_id, (arch_id.lower(),))
        loaded = all(n in archs for n in names)
        if loaded:
            covered.update(names)
        note = ("" if loaded else NOT_DONE_REASONS[arch_id] if arch_id in NOT_DONE_REASONS
                else "transformer half of issue 21 (other helper)" if arch_id in TRANSFORMER_HALF
                else "not in issue 21" if arch_id in NOT_IN_ISSUE_21 else "issue 21, not done yet")
        rows.append(f"| {arch_id} | {purposes} | {'yes' if loaded else 'no'} | "
                    f"{', '.join(f'`{n}`' for n in names) if loaded else '-'} | {note} |")
    done = sum(r.split(" | ")[2] == "yes" for r in rows)
    also = {arch_id: names for arch_id, names in RESTORATION_ALSO_READ.items() if all(n in archs for n in names)}
    for names in also.values():
        covered.update(names)
    also_text = "".join(f" litesr also reads {arch_id} ({', '.join(f'`{n}`' for n in names)})."
                        for arch_id, names in sorted(also.items()))
    own = sorted(n for n in archs if n not in covered and n != "bicubic")
    lines = [
        "# spandrel coverage",
        "",
        f"Every architecture of spandrel {spandrel.__version__} that can be super-resolution (its descriptor's "
        "purpose is \"SR\" for some scale), and whether `litesr.load_model` reads its checkpoints. "
        f"**{done} of {len(sr)}** load. Generated by `python scripts/spandrel_coverage.py` from spandrel's registry "
        "and litesr's; `tests/test_spandrel_coverage.py` fails when this page is out of date.",
        "",
        "Each loaded architecture has a parity test (`tests/test_zoo_<arch>.py` or the older `test_zoo_*` files): "
        "spandrel's model and litesr's, from the same random state dict saved as spandrel finds it, agree on the "
        "hyper-parameters and give the same output within 1e-5. No official checkpoint of these architectures could "
        "be downloaded on the machine that built them (no internet), so none is verified here against published "
        "PSNR.",
        "",
        "| spandrel architecture | purpose | litesr loads | litesr architecture | note |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "spandrel's restoration-only (denoising, deblurring, inpainting, face) architectures are not listed."
        + also_text,
        "",
        f"## litesr's own architectures ({len(own)}, not in spandrel {spandrel.__version__})",
        "",
        ", ".join(f"`{n}`" for n in own),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/spandrel_coverage.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE}: out of date; run python scripts/spandrel_coverage.py", file=sys.stderr)
            return 1
        return 0
    from litesr.checkpoint import atomic_output

    with atomic_output(PAGE) as tmp:
        tmp.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
