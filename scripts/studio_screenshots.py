"""Screenshots of every litesr studio page for docs/studio/*.png, from a throw-away session.

    python scripts/studio_screenshots.py            # needs the studio extra, playwright and Debian's chromium

The Upscale page runs litesr's shipped x2 SSIU on the demo picture; Compare and Rate use a `litesr eval --save-images`
run of it on a three-image set cut from the demo picture. The ratings on the Results page are scripted clicks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "studio")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    import numpy as np
    from playwright.sync_api import sync_playwright
    from studio_helpers import live_server, make_app, write_png

    from litesr.cli import main as litesr
    from litesr.demo import sample_hr, sample_image
    from litesr.images import write_image

    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        demo = write_image(tmp / "demo.png", sample_image(2))
        hr = np.round(sample_hr() * 255).astype(np.uint8)
        h, w = hr.shape[:2]
        for i, (y, x) in enumerate([(0, 0), (h // 3, w // 3), (h - 96, w - 128)]):
            write_png(tmp / "DemoSet" / "HR" / f"crop{i}.png", hr[y : y + 96, x : x + 128])
        runs = [tmp / "runs" / "ssiu"]  # bicubic and HR are built-in conditions of every run group
        shipped = str(ROOT / "litesr" / "weights" / "ssiu_x2.safetensors")
        assert litesr(["eval", "--model", "ssiu", "--weights", shipped, "--dataset", str(tmp / "DemoSet"),
                       "--save-images", str(runs[0]), "--no-progress"]) == 0
        app = make_app(tmp / "session", runs=runs)
        with live_server(app) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)

            page.goto(base + "/")
            page.select_option("#model", "zoo:ssiu")
            page.select_option("#tile", "64")
            page.set_input_files("#files", str(demo))
            page.wait_for_function("document.querySelector('.item .state').textContent === 'ready'")
            page.click("#run")
            page.wait_for_function("document.querySelector('.item').dataset.state === 'done'")
            page.click(".item button.view")
            page.wait_for_function("document.getElementById('after').naturalWidth > 0")
            box = page.locator("#split").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.45)
            page.screenshot(path=str(args.output / "upscale.png"), full_page=True)

            page.goto(base + "/compare")
            page.wait_for_selector("#metrics")
            first = page.locator(".image-block").first
            first.locator(".pick").click(position={"x": 70, "y": 40})
            page.wait_for_timeout(300)
            page.screenshot(path=str(args.output / "compare.png"), full_page=False)

            page.goto(base + "/rate")
            page.fill("#rater", "demo")
            page.fill("#count", "3")
            page.click("#begin")
            page.wait_for_selector("#stimuli img")
            for step in range(30):
                if page.locator("#finished").is_visible():
                    break
                page.wait_for_function("Array.from(document.querySelectorAll('#stimuli img')).every(i => i.complete)")
                if step == 1:
                    page.screenshot(path=str(args.output / "rate.png"), full_page=False)
                buttons = page.locator("#answers button")
                buttons.nth((step * 3) % buttons.count()).click()
                page.wait_for_timeout(80)
            page.goto(base + "/results")
            page.wait_for_selector("#mos-table")
            page.screenshot(path=str(args.output / "results.png"), full_page=True)
            browser.close()
    for shot in sorted(args.output.glob("*.png")):
        print(f"wrote {shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
