"""docs/spandrel_coverage.md is what scripts/spandrel_coverage.py computes from the two registries right now."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_coverage_page_is_current(spandrel) -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "spandrel_coverage.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_page_counts_the_new_architectures(spandrel) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    import spandrel_coverage

    rows = {arch_id for arch_id, _ in spandrel_coverage.spandrel_sr_architectures()}
    assert {"ESRGAN", "Compact", "RealCUGAN", "SwiftSRGAN", "DCTLSA", "MoSR", "MoESR", "FDAT"} <= rows
    assert "GFPGAN" not in rows and "NAFNet" not in rows  # face SR and restoration-only are not SR rows
    page = (REPO / "docs" / "spandrel_coverage.md").read_text()
    for arch in ("esrgan", "compact", "realcugan", "swiftsrgan", "dctlsa", "mosr", "moesr"):
        assert f"| yes | `{arch}` |" in page
