"""The batch machinery without the command line: planning, the pipeline, its reports."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from handseg_core import batch, load_model
from tiny_model import hand_picture


@pytest.fixture
def red(red_model):
    return load_model(red_model, device="cpu")


class Recorder:
    def __init__(self):
        self.errors, self.steps = [], 0

    def error(self, message):
        self.errors.append(message)

    def advance(self, steps=1, item=None):
        self.steps += steps


def test_a_batch_writes_each_input_and_reports_a_bad_one(tmp_path, red):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(hand_picture(40 + 8 * i, 30, seed=i)[0]).save(photos / f"p{i}.png")
    (photos / "broken.jpg").write_bytes(b"not a picture")
    out = tmp_path / "out"

    sources, problems = batch.expand_inputs([str(photos), str(tmp_path / "missing.jpg")], False, out)
    plan = batch.plan_outputs(sources, out, overwrite=False)
    progress = Recorder()
    counts = batch.Batch(red.segment, batch.decode_in_engine, lambda decoded, result: Image.fromarray(result.alpha),
                         progress, sidecar=True).run(plan.jobs)

    assert problems == [f"{tmp_path / 'missing.jpg'}: no such file or folder"]
    assert (counts.written, counts.failed) == (3, 1) and progress.steps == 4
    assert len(progress.errors) == 1 and "broken.jpg" in progress.errors[0]
    assert sorted(p.name for p in out.iterdir()) == ["p0.json", "p0.png", "p1.json", "p1.png", "p2.json", "p2.png"]
    assert Image.open(out / "p2.png").size == (56, 30)
    rerun = batch.plan_outputs(sources, out, overwrite=False)
    assert rerun.skipped == 3 and [job.source.name for job in rerun.jobs] == ["broken.jpg"]


def test_messages_name_the_fronts_own_controls(tmp_path):
    (tmp_path / "empty").mkdir()
    wording = batch.Wording(output_folder="-o folder", recursive="--recursive looks in subfolders")
    _, problems = batch.expand_inputs([str(tmp_path / "empty")], False, tmp_path / "out", wording)
    assert problems == [f"{tmp_path / 'empty'}: no images in this folder; --recursive looks in subfolders"]
    photo = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(photo)
    plan = batch.plan_outputs([batch.Source(photo)], tmp_path, overwrite=True, wording=wording)
    assert plan.problems == [f"{photo}: its output {photo} would overwrite an input; choose another -o folder"]


def test_unique_stems_and_png_bytes():
    assert batch.unique_stems(["a", "b", "a", "a", "a-2"]) == ["a", "b", "a-2", "a-3", "a-2-2"]
    data = batch.png_bytes(Image.new("L", (3, 2)))
    assert data.startswith(b"\x89PNG") and Image.open(io.BytesIO(data)).size == (3, 2)


@pytest.mark.parametrize("pattern, root", [("IN/**/*", "IN"), ("IN/*.jpg", "IN"), ("*/x/*.png", "."),
                                           ("/a/b*/c/*", "/a"), ("IN/sub/[ab].png", "IN/sub")])
def test_a_glob_searches_from_its_plain_leading_folders(pattern, root):
    from pathlib import Path

    assert batch.glob_root(pattern) == Path(root)


def test_outputs_inside_a_globbed_tree_are_never_inputs(tmp_path):
    for name in ("IN/a.jpg", "IN/deeper/b.png", "IN/cutouts/a.png", "IN/cutouts/deep/c.png"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(hand_picture(20, 10)[0]).save(path)
    sources, problems = batch.expand_inputs([str(tmp_path / "IN" / "**" / "*")], False, tmp_path / "IN" / "cutouts")
    assert sorted(s.path.relative_to(tmp_path).as_posix() for s in sources) == ["IN/a.jpg", "IN/deeper/b.png"]
    same, _ = batch.expand_inputs([str(tmp_path / "IN" / "cutouts" / "*")], False, tmp_path / "IN" / "cutouts")
    assert len(same) == 1  # globbing the output folder itself is asked for: refused later as "would overwrite"


@pytest.mark.parametrize("limit, most", [(10**9, 3), (64 * 48, 1), (2 * 64 * 48, 2)])
def test_large_images_are_held_a_few_at_a_time(tmp_path, red, monkeypatch, limit, most):
    import threading
    import time

    for i in range(8):
        Image.fromarray(hand_picture(64, 48, seed=i)[0]).save(tmp_path / f"{i}.png")
    jobs = [batch.Job(tmp_path / f"{i}.png", tmp_path / "out" / f"{i}.png") for i in range(8)]
    monkeypatch.setattr(batch, "BATCH_PIXELS", limit)
    monkeypatch.setattr(batch, "cores", lambda: 2)
    lock, holding, peak = threading.Lock(), [0], [0]

    def decode(path):
        with lock:
            holding[0] += 1
            peak[0] = max(peak[0], holding[0])
        time.sleep(0.05)
        return batch.decode_with_image(path)

    def render(decoded, result):
        with lock:
            holding[0] -= 1  # the image is let go once rendered
        return Image.fromarray(result.alpha)

    counts = batch.Batch(red.segment, decode, render).run(jobs)

    assert counts.written == 8 and counts.failed == 0
    assert peak[0] <= most if most < 3 else peak[0] >= most  # unbounded: more than one at a time
