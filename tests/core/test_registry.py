from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

import handseg_core
from handseg_core import ChecksumError, ModelError, registry
from handseg_core.registry import ModelSpec, available_models, expected_checksum, find, read_verified
from tiny_model import write_red_model

PACKAGED = "handseg-lite2-int8"  # the default


def flip_one_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_packaged_index_is_read():
    index = json.loads((registry.PACKAGED_DIR / "index.json").read_text())["models"]
    models = available_models(registry.KINDS)
    assert {spec.kind for spec in models.values()} == set(registry.KINDS)
    for entry in index:
        spec = models[entry["name"]]
        assert spec.file == entry["file"] and spec.sha256 == entry["sha256"]
        assert spec.input_size == entry["input_size"] and spec.stride == entry.get("stride", 32)
        assert spec.mean == tuple(entry.get("mean", spec.mean)) and spec.std == tuple(entry.get("std", spec.std))
        assert spec.path.is_file()
    assert [e["name"] for e in index if e.get("default")] == [registry.default_model_name()]


def test_packaged_models_match_their_checksums():
    for spec in available_models(registry.KINDS).values():
        data = read_verified(spec)
        assert hashlib.sha256(data).hexdigest() == spec.sha256
        sidecar = spec.path.with_name(spec.path.name + ".sha256")  # read where the file is used without the index
        if sidecar.exists():
            assert sidecar.read_text().split() == [spec.sha256, spec.path.name]


def test_find_default_by_name_and_by_path():
    default = find(None)
    assert default.name == registry.default_model_name() == PACKAGED
    assert find(PACKAGED) == default
    # A registered model given by its path keeps its name and recorded checksum.
    by_path = find(str(default.path))
    assert by_path.name == PACKAGED and by_path.sha256 == default.sha256


def test_unknown_name_lists_the_available_models(tmp_path, monkeypatch):
    write_red_model(tmp_path, "extra-model")
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    with pytest.raises(ModelError) as caught:
        find("no-such-model")
    text = str(caught.value)
    assert "no-such-model" in text and PACKAGED in text and "extra-model" in text and ".onnx" in text
    with pytest.raises(ModelError, match="no-such-model"):
        handseg_core.load_model("no-such-model")


def test_missing_onnx_path(tmp_path):
    with pytest.raises(ModelError, match="no such model file") as caught:
        find(tmp_path / "absent.onnx")
    assert "absent.onnx" in str(caught.value)


def test_env_folders_add_models(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    write_red_model(first, "from-a")
    write_red_model(second, "from-b")
    assert "from-a" not in available_models()
    monkeypatch.setenv("HANDSEG_MODELS", os.pathsep.join([str(first), "", str(second), str(tmp_path / "absent")]))
    models = available_models()
    assert list(models)[0] == PACKAGED  # packaged first
    assert models["from-a"].path == first / "from-a.onnx"
    assert models["from-b"].path == second / "from-b.onnx"
    session = handseg_core.load_model("from-b")
    assert session.spec.name == "from-b" and session.spec.input_size == 128  # from the ONNX metadata


def test_env_folder_index_and_name_clash(tmp_path, monkeypatch):
    path = write_red_model(tmp_path, "weights-v2", sidecar=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entries = [
        {"name": "red-hands", "file": path.name, "sha256": digest, "input_size": 96, "stride": 32,
         "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "encoder": "none"},
        {"name": PACKAGED, "file": path.name},  # cannot shadow the packaged model
    ]
    (tmp_path / "index.json").write_text(json.dumps({"models": entries}))
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    models = available_models()
    assert models["red-hands"].input_size == 96 and models["red-hands"].sha256 == digest
    assert "weights-v2" not in models  # indexed files are listed under their index name only
    assert models[PACKAGED].folder == str(registry.PACKAGED_DIR)


def test_invalid_index_is_a_model_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ModelError, match="index.json"):
        available_models()
    (tmp_path / "index.json").write_text(json.dumps({"models": [{"name": "x", "file": "x.onnx", "colour": 1}]}))
    with pytest.raises(ModelError, match="index.json") as caught:
        available_models()
    assert "'x'" in str(caught.value)


def test_sidecar_checksum(tmp_path):
    path = write_red_model(tmp_path, "with-sidecar")
    spec = find(path)
    assert spec.sha256 == ""
    assert expected_checksum(spec) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_verified(spec) == path.read_bytes()


def test_no_checksum_loads_by_path_with_a_one_line_warning(tmp_path):
    path = write_red_model(tmp_path, "unverified", sidecar=False)
    spec = find(path)
    assert expected_checksum(spec) == ""
    flip_one_byte(path)
    with pytest.warns(registry.UnverifiedModelWarning) as caught:
        assert read_verified(spec) == path.read_bytes()
    message = str(caught[0].message)
    assert "\n" not in message and str(path) in message and "no checksum" in message
    assert "handseg export" in message and "unverified.onnx.sha256" in message


def test_a_model_without_checksum_is_not_listed_nor_found_by_name(tmp_path, monkeypatch):
    write_red_model(tmp_path, "dropped-in", sidecar=False)
    write_red_model(tmp_path, "exported")
    entry = {"name": "indexed-unverified", "file": "dropped-in.onnx"}  # an index entry without sha256
    (tmp_path / "index.json").write_text(json.dumps({"models": [entry]}))
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    models = available_models()
    assert "exported" in models
    assert "dropped-in" not in models and "indexed-unverified" not in models
    with pytest.raises(ModelError, match="no recorded checksum") as caught:
        find("dropped-in")
    assert "handseg export" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.warns(registry.UnverifiedModelWarning):  # named by its path, it loads
        assert handseg_core.load_model(tmp_path / "dropped-in.onnx").spec.name == "dropped-in"


def test_a_damaged_sidecar_is_refused_and_not_listed(tmp_path, monkeypatch):
    path = write_red_model(tmp_path, "garbled")
    registry.sidecar_of(path).write_text("not-a-checksum  garbled.onnx\n")
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    assert "garbled" not in available_models()
    with pytest.raises(ChecksumError, match="not a sha256"):
        handseg_core.load_model(path)


def test_a_modified_byte_is_refused(tmp_path):
    path = write_red_model(tmp_path, "tampered")
    flip_one_byte(path)
    with pytest.raises(ChecksumError) as caught:
        read_verified(find(path))
    text = str(caught.value)
    assert "tampered.onnx" in text and "checksum" in text and "\n" not in text
    with pytest.raises(ChecksumError):
        handseg_core.load_model(path)
    assert issubclass(ChecksumError, ModelError)


def test_index_checksum_is_enforced(tmp_path, monkeypatch):
    path = write_red_model(tmp_path, "listed", sidecar=False)
    entry = {"name": "listed", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    (tmp_path / "index.json").write_text(json.dumps({"models": [entry]}))
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    flip_one_byte(path)
    with pytest.raises(ChecksumError):
        handseg_core.load_model("listed")
    with pytest.raises(ChecksumError):  # also when given by path
        handseg_core.load_model(path)


def test_a_file_damaged_after_loading_is_refused_on_the_next_load(tmp_path):
    path = write_red_model(tmp_path, "damaged-later")
    assert handseg_core.load_model(path).spec.name == "damaged-later"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(ChecksumError):
        handseg_core.load_model(path)


def test_missing_model_file(tmp_path, monkeypatch):
    entry = {"name": "gone", "file": "gone.onnx", "sha256": "ab" * 32}
    (tmp_path / "index.json").write_text(json.dumps({"models": [entry]}))
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    with pytest.raises(ModelError, match="missing"):
        read_verified(find("gone"))
    with pytest.raises(ModelError, match="missing"):
        handseg_core.load_model("gone")


def test_metadata_round_trip(tmp_path):
    spec = ModelSpec(name="m", file="m.onnx", encoder="enc", input_size=320, mean=(0.1, 0.2, 0.3),
                     std=(0.4, 0.5, 0.6), stride=16, metrics={"iou": 0.9}, sha256="ab" * 32, folder="/x")
    metadata = spec.to_metadata()
    assert all(k.startswith(registry.METADATA_PREFIX) for k in metadata)
    assert not any(k.endswith(("folder", "sha256")) for k in metadata)
    back = ModelSpec.from_metadata({**metadata, "other.key": "1"}, tmp_path / "renamed.onnx")
    assert back.file == "renamed.onnx" and back.folder == str(tmp_path)
    assert (back.name, back.encoder, back.input_size, back.mean, back.std, back.stride) == (
        "m", "enc", 320, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 16)
    assert back.metrics == {"iou": 0.9}


def test_copied_model_without_sidecar_loads_by_path(tmp_path):
    source = write_red_model(tmp_path / "src", "copied")
    target = tmp_path / "dst" / "copied.onnx"
    target.parent.mkdir()
    shutil.copy(source, target)
    with pytest.warns(registry.UnverifiedModelWarning):
        assert handseg_core.load_model(target).spec.name == "copied"


def test_env_default_model_is_used_when_no_model_is_named(tmp_path, monkeypatch):
    write_red_model(tmp_path, "my-hands")
    monkeypatch.setenv("HANDSEG_MODELS", str(tmp_path))
    monkeypatch.setenv("HANDSEG_DEFAULT_MODEL", " my-hands ")
    assert registry.default_model_name() == "my-hands"
    assert find(None).name == "my-hands" and find(None).folder == str(tmp_path)
    assert handseg_core.load_model().spec.name == "my-hands"
    monkeypatch.setenv("HANDSEG_DEFAULT_MODEL", "")
    assert find(None).name == PACKAGED


def test_env_default_model_must_be_known(monkeypatch):
    monkeypatch.setenv("HANDSEG_DEFAULT_MODEL", "typo-model")
    with pytest.raises(ModelError) as caught:
        find(None)
    text = str(caught.value)
    assert "HANDSEG_DEFAULT_MODEL" in text and "typo-model" in text and PACKAGED in text and "\n" not in text


def test_find_listed_takes_names_only(tmp_path, monkeypatch):
    path = write_red_model(tmp_path / "models", "listed")
    monkeypatch.setenv("HANDSEG_MODELS", str(path.parent))
    assert registry.find_listed("listed").path == path
    for value in (str(path), "listed.onnx", "../models/listed.onnx", "/etc/passwd", None):
        with pytest.raises(ModelError, match="refused"):
            registry.find_listed(value)


def test_is_inside_resolves_symlinks_and_dots(tmp_path):
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "out").symlink_to(tmp_path, target_is_directory=True)
    (folder / "passwd.onnx").symlink_to("/etc/passwd")
    assert registry.is_inside(folder / "sub" / "a.onnx", folder)
    assert not registry.is_inside(folder / ".." / "a.onnx", folder)
    assert not registry.is_inside(folder / "out" / "a.onnx", folder)
    assert not registry.is_inside(folder / "passwd.onnx", folder)
    assert not registry.is_inside(folder, folder)
