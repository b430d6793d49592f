"""litesr studio in headless Chromium (Playwright driving Debian's chromium, no browser download): upscale an image and
download exactly what `litesr upscale` writes, pick a crop on the Compare page, complete a rating session."""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="litesr studio needs the studio extra (pip install 'litesr[studio]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install "
                                                           "playwright; no browser download: Debian's chromium)")

from studio_helpers import eval_run, live_server, make_app, picture, tiny_checkpoint, write_png  # noqa: E402

CHROMIUM = os.environ.get("LITESR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):  # noqa: ANN201
    """One session for the module: two tiny checkpoints, their eval runs, a live server."""
    tmp = tmp_path_factory.mktemp("studio")
    models = tmp / "models"
    weights = [tiny_checkpoint(models, "imdn", seed=0), tiny_checkpoint(models, "rlfn", seed=1)]
    runs = eval_run(tmp, weights)
    app = make_app(tmp / "session", models_dir=models, runs=runs)
    with live_server(app) as base:
        yield {"base": base, "tmp": tmp, "models": models, "runs": runs, "session": tmp / "session"}


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    if not Path(CHROMIUM).is_file() and shutil.which(CHROMIUM) is None:
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium, or set LITESR_CHROMIUM)")
    playwright = sync_api.sync_playwright().start()
    try:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except sync_api.Error as exc:
            pytest.skip(f"chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser, studio):  # noqa: ANN001, ANN201
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def test_upscale_page_result_is_byte_identical_to_litesr_upscale(page, studio, tmp_path) -> None:
    from litesr.cli import main

    source = write_png(tmp_path / "photo.png", picture(72, 56, seed=3))
    expected = tmp_path / "cli" / "photo_x2.png"
    weights = studio["models"] / "tiny_imdn.safetensors"
    assert main(["upscale", str(source), "-o", str(expected), "--weights", str(weights), "--tile", "32"]) == 0

    page.goto(studio["base"] + "/")
    page.select_option("#model", "file:tiny_imdn.safetensors")
    page.select_option("#tile", "32")
    page.set_input_files("#files", str(source))
    card = page.locator('.item[data-name="photo.png"]')
    sync_api.expect(card.locator(".state")).to_have_text("ready")
    seen = []  # progress values the page showed while the job ran: fed by the engine, tile by tile
    page.expose_function("recordProgress", lambda v: seen.append(v))
    page.evaluate("""() => { const bar = document.querySelector('.item progress');
        new MutationObserver(() => window.recordProgress(bar.value)).observe(bar, {attributes: true}); }""")
    page.click("#run")
    page.wait_for_function("document.querySelector('.item').dataset.state === 'done'")
    assert page.locator(".item progress").evaluate("p => p.value") == 1
    with page.expect_download() as download:
        card.locator("a.download").click()
    assert download.value.suggested_filename == "photo_x2.png"
    assert Path(download.value.path()).read_bytes() == expected.read_bytes()
    assert seen and seen[-1] == 1 and len(set(seen)) >= 2

    card.locator("button.view").click()  # the before/after viewer and its loupes
    page.wait_for_function("document.getElementById('after').naturalWidth === 144")
    page.mouse.move(*_centre(page, "#split"))
    filled = page.evaluate("""() => { const c = document.getElementById('loupe-after').getContext('2d');
        const d = c.getImageData(0, 0, 220, 220).data; let n = 0; for (let i = 0; i < d.length; i += 4)
        if (d[i] !== 229 || d[i + 1] !== 231 || d[i + 2] !== 235) n++; return n; }""")
    assert filled > 220 * 220 // 2  # the loupe shows the picture, not its grey background
    page.screenshot(path=str(tmp_path / "upscale.png"), full_page=True)


def _centre(page, selector: str) -> tuple[float, float]:  # noqa: ANN001
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_compare_page_shows_metrics_and_the_clicked_crop(page, studio, tmp_path) -> None:
    import json

    page.goto(studio["base"] + "/compare")
    rows = page.locator("#metrics tr")
    sync_api.expect(rows).to_have_count(1 + 2 + 1)  # header, two images, mean
    index = json.loads((studio["runs"][0] / "litesr_eval.json").read_text())["results"][0]
    first = next(i for i in index["images"] if i["name"] == "img0")
    assert f"{first['psnr']:.2f} / {first['ssim']:.4f}" in rows.nth(1).inner_text()

    block = page.locator('.image-block[data-image="img0"]')
    picture_box = block.locator(".pick img")
    page.wait_for_function("document.querySelector('.image-block').dataset.crop !== undefined")
    scale_view = picture_box.bounding_box()["width"] / 48
    block.locator(".pick").click(position={"x": 30 * scale_view, "y": 25 * scale_view})
    # 32-pixel crop around (30, 25), kept inside the 48x40 picture: top-left (14, 8)
    sync_api.expect(block).to_have_attribute("data-crop", "14,8,32")
    hr = np.asarray(Image.open(studio["session"] / "cache" / "group0" / "0_hr.png").convert("RGB"))
    sr_path = studio["runs"][0] / "TinySet" / "x2" / "img0.png"
    for condition, pixels in (("HR", hr), (page.locator("#metrics th").nth(1).inner_text().split(" PSNR")[0],
                                           np.asarray(Image.open(sr_path).convert("RGB")))):
        page.wait_for_function(
            """c => { const v = document.querySelector(`.image-block[data-image="img0"] canvas[data-condition="${c}"]`);
                      return v && v.width === 32 * 6; }""", arg=condition)
        shown = np.array(block.locator(f'canvas[data-condition="{condition}"]').evaluate(
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, out = [];
                      for (let y = 3; y < c.height; y += 6) for (let x = 3; x < c.width; x += 6)  // zoomed centres
                        for (let k = 0; k < 3; k++) out.push(d[4 * (y * c.width + x) + k]);
                      return out; }"""), dtype=np.uint8).reshape(32, 32, 3)
        np.testing.assert_array_equal(shown, pixels[8:40, 14:46])
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)


def test_rating_session_is_stored_and_summarised(page, studio, tmp_path) -> None:
    page.goto(studio["base"] + "/rate")
    page.fill("#rater", "browser test")
    page.fill("#count", "2")
    page.click("#begin")
    given = []
    trial = page.locator("#trial")
    for step in range(40):
        page.wait_for_function("!document.getElementById('trial').hidden "
                               "|| !document.getElementById('finished').hidden")
        if trial.is_hidden():
            break
        sync_api.expect(page.locator("#progressline")).to_have_text(f"Trial {step + 1} of 14")
        page.wait_for_function("Array.from(document.querySelectorAll('#stimuli img')).every(i => i.complete)")
        if page.locator("#stimuli").get_attribute("data-kind") == "abs":
            score = 1 + step % 5
            page.locator("#answers button").nth(score - 1).click()
            given.append(("abs", score))
        else:
            page.locator("#answers button").nth(step % 2).click()
            given.append(("ab", "ab"[step % 2]))
        page.wait_for_function(f"document.getElementById('progressline').textContent !== 'Trial {step + 1} of 14' "
                               "|| !document.getElementById('finished').hidden")
    sync_api.expect(page.locator("#finished")).to_be_visible()
    assert len(given) == 14  # 2 images x (HR, bicubic, 2 models) ratings + 2 images x 3 pairs

    with sqlite3.connect(studio["session"] / "ratings.sqlite") as db:
        session = db.execute("SELECT id FROM sessions WHERE rater = 'browser test'").fetchone()[0]
        ratings = db.execute("SELECT trial, condition, score FROM ratings WHERE session = ? ORDER BY trial",
                             (session,)).fetchall()
        prefs = db.execute("SELECT trial, cond_a, cond_b, winner FROM preferences WHERE session = ? ORDER BY trial",
                           (session,)).fetchall()
        kinds = dict(db.execute("SELECT idx, kind FROM trials WHERE session = ?", (session,)).fetchall())
    assert [s for k, s in given if k == "abs"] == [r[2] for r in ratings]
    assert [c for k, c in given if k == "ab"] == ["a" if w == a else "b" for _, a, _, w in prefs]
    assert all(kinds[t] == "abs" for t, _, _ in ratings) and all(kinds[t] == "ab" for t, *_ in prefs)
    assert sorted({c for _, c, _ in ratings}) == sorted(["HR", "bicubic", "imdn (tiny_imdn)", "rlfn (tiny_rlfn)"])

    page.goto(studio["base"] + "/results")
    table = page.locator("#mos-table")
    sync_api.expect(table.locator("tr")).to_have_count(1 + 4)
    for condition in {c for _, c, _ in ratings}:
        scores = [s for _, c, s in ratings if c == condition]
        mean = statistics.mean(scores)
        half = 12.706 * statistics.stdev(scores) / math.sqrt(2)  # two ratings: t(0.975, 1 df)
        cells = table.locator(f'tr[data-condition="{condition}"] td').all_inner_texts()
        assert cells[1:3] == ["2", f"{mean:.3f}"]
        assert cells[3] == (f"{mean - half:.3f} – {mean + half:.3f}" if half else f"{mean:.3f} – {mean:.3f}")
    with page.expect_download() as download:
        page.click("#csv")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0] == "kind,condition,n,mos_or_win_rate,sd,ci95_low,ci95_high"
    assert sum(line.startswith("mos,") for line in csv_text.splitlines()) == 4
    assert sum(line.startswith("preference,") for line in csv_text.splitlines()) == 3
    page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
