"""End-to-end check of the handseg nodes in a real ComfyUI.

    python tests/plugins/comfyui/e2e_comfyui.py COMFYUI_DIR [--python COMFYUI_PYTHON] [--port 8188] [--clone]

(or set COMFYUI_DIR and COMFYUI_PYTHON, and COMFYUI_CLONE=1). Run it with a Python that has
handseg and its test extras (onnx); COMFYUI_PYTHON, the one that runs ComfyUI, needs ComfyUI's
requirements and either handseg (`pip install -e .`) or, with --clone, only this repository's
requirements.txt: --clone first clones this repository into custom_nodes/handseg (the way
ComfyUI-Manager installs a pack; committed work only), and `install()` then finds it and writes
no shim. The script installs the pack with `install()`, checks the template browser lists the
UI-format examples with their thumbnails, puts a test picture
in ComfyUI's input folder and a test model (red pixels are hands) in models/handseg, starts
ComfyUI on 127.0.0.1 with --cpu (niced), posts the shipped example workflow, waits for
/history, checks the saved PNG against handseg run directly, and stops ComfyUI. Without a
ComfyUI folder it prints SKIPPED and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TESTS))

import handseg_core  # noqa: E402
import handseg_plugins.comfyui as pack  # noqa: E402
from handseg_plugins.comfyui import NODE_CLASS_MAPPINGS, install  # noqa: E402
from tiny_model import hand_picture, write_red_model  # noqa: E402

WORKFLOW = Path(pack.__file__).parent / "workflows" / "remove_background.json"
REPO = Path(pack.__file__).resolve().parents[2]
TEMPLATES = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
INPUT_NAME = "handseg_e2e.png"
RED_MODEL = "handseg-e2e-red"


class Failure(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failure(message)
    print(f"ok: {message}")


def request(url: str, payload: dict | None = None) -> tuple[int, dict]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_comfyui(root: Path, python: str, port: int, log: Path) -> subprocess.Popen:
    command = ["nice", "-n", "15", python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--disable-auto-launch"]
    print("starting:", " ".join(command), f"(in {root}, log {log})")
    return subprocess.Popen(command, cwd=root, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_until_up(base: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure(f"ComfyUI exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if request(f"{base}/system_stats")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    raise Failure(f"ComfyUI did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def run_prompt(base: str, prompt: dict, timeout: float) -> dict:
    status, answer = request(f"{base}/prompt", {"prompt": prompt, "client_id": "handseg-e2e"})
    if status != 200:
        raise Failure(f"/prompt answered {status}: {json.dumps(answer)[:2000]}")
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = request(f"{base}/history/{prompt_id}")[1]
        entry = history.get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            if entry["status"].get("status_str") != "success":
                raise Failure(f"prompt failed: {json.dumps(entry['status'])[:3000]}")
            return entry
        time.sleep(1)
    raise Failure(f"prompt {prompt_id} not done within {timeout:.0f} s")


def saved_image(root: Path, entry: dict, node_id: str) -> Path:
    (image,) = entry["outputs"][node_id]["images"]
    return root / "output" / image["subfolder"] / image["filename"]


def check_cutout(path: Path, rgb: np.ndarray, expected_alpha: np.ndarray, label: str) -> np.ndarray:
    with Image.open(path) as saved:
        check(saved.mode == "RGBA", f"{label}: {path.name} is RGBA")
        check(saved.size == (rgb.shape[1], rgb.shape[0]), f"{label}: size {saved.size} is the input's")
        out = np.asarray(saved)
    alpha = out[..., 3]
    check(set(np.unique(alpha)) <= {0, 255}, f"{label}: alpha is 0/255 (no feather asked)")
    differing = float(np.mean(np.abs(alpha.astype(int) - expected_alpha.astype(int)) > 1))
    check(differing < 0.001, f"{label}: alpha equals handseg run directly ({differing:.4%} pixels differ)")
    kept = alpha == 255
    if kept.any():
        check(np.abs(out[..., :3][kept].astype(int) - rgb[kept].astype(int)).max() <= 1, f"{label}: kept pixels are the input's")
    return alpha


def clone_into(root: Path) -> None:
    target = root / "custom_nodes" / "handseg"
    if not target.exists():
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)
    print(f"cloned: {target}")


def fetch_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def e2e(root: Path, python: str, port: int, timeout: float, clone: bool = False) -> None:
    base = f"http://127.0.0.1:{port}"
    if not port_is_free(port):
        raise Failure(f"port {port} is in use; pass --port")
    if clone:
        clone_into(root)
    installed = install(root)
    print(f"installed: {installed}")
    rgb, truth = hand_picture(320, 240, seed=7)
    (root / "input").mkdir(exist_ok=True)
    Image.fromarray(rgb).save(root / "input" / INPUT_NAME)
    red = write_red_model(root / "models" / "handseg", name=RED_MODEL)
    log = Path(tempfile.mkdtemp(prefix="handseg-e2e-")) / "comfyui.log"
    process = start_comfyui(root, python, port, log)
    try:
        wait_until_up(base, process, log, timeout)
        failed = [line for line in log.read_text().splitlines() if "IMPORT FAILED" in line and "handseg" in line]
        check(not failed, "ComfyUI imported the pack without error")
        info = request(f"{base}/object_info")[1]
        check(set(NODE_CLASS_MAPPINGS) <= set(info), f"ComfyUI lists the nodes {sorted(NODE_CLASS_MAPPINGS)}")
        check(info["HandsegRemoveBackground"]["input"]["required"]["transparent"][1]["default"] is True,
              "Remove background is transparent by default")
        check(info["HandsegHandSegs"]["output"] == ["SEGS", "BBOX"], "Hand SEGS gives SEGS and BBOX")
        templates = request(f"{base}/api/workflow_templates")[1]
        check(sorted(templates.get(installed.name, [])) == TEMPLATES, f"the template browser lists {templates}")
        for name in TEMPLATES:
            for suffix in (".json", ".jpg"):
                url = f"{base}/api/workflow_templates/{installed.name}/{name}{suffix}"
                check(fetch_status(url) == 200, f"{name}{suffix} is served")
        choices = info["HandsegLoadModel"]["input"]["required"]["model"][0]
        check("handseg-lite0" in choices and red.name in choices, f"the model dropdown offers {choices}")

        prompt = json.loads(WORKFLOW.read_text())
        prompt["1"]["inputs"]["image"] = INPUT_NAME
        started = time.monotonic()
        entry = run_prompt(base, prompt, timeout)
        print(f"shipped workflow ran in {time.monotonic() - started:.1f} s")
        direct = handseg_core.load_model("handseg-lite2-int8", device="cpu").segment(rgb).alpha
        check_cutout(saved_image(root, entry, "4"), rgb, direct, "handseg-lite2-int8")

        prompt["2"]["inputs"]["model"] = red.name
        entry = run_prompt(base, prompt, timeout)
        direct = handseg_core.load_model(red, device="cpu").segment(rgb).alpha
        alpha = check_cutout(saved_image(root, entry, "4"), rgb, direct, red.name)
        hand = alpha == 255
        iou = (hand & truth).sum() / max(1, (hand | truth).sum())
        check(iou > 0.9, f"{red.name}: the cut-out is the red hand (IoU {iou:.3f})")

        prompt["2"]["inputs"]["model"] = "../../main.py"
        status, answer = request(f"{base}/prompt", {"prompt": prompt, "client_id": "handseg-e2e"})
        check(status == 400, f"a traversal model value is refused (HTTP {status}: {answer.get('error', {}).get('type')})")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"stopped ComfyUI (exit {process.returncode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("comfyui_dir", nargs="?", default=os.environ.get("COMFYUI_DIR"))
    parser.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON", sys.executable))
    parser.add_argument("--port", type=int, default=int(os.environ.get("COMFYUI_PORT", "8188")))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for start-up and for each prompt")
    parser.add_argument("--clone", action="store_true", default=bool(os.environ.get("COMFYUI_CLONE")),
                        help="clone this repository into custom_nodes/ first, as ComfyUI-Manager installs packs")
    args = parser.parse_args()
    if not args.comfyui_dir or not (Path(args.comfyui_dir) / "main.py").is_file():
        print(f"SKIPPED: no ComfyUI folder (got {args.comfyui_dir!r}); pass COMFYUI_DIR or set the environment variable")
        return 0
    try:
        e2e(Path(args.comfyui_dir).resolve(), args.python, args.port, args.timeout, args.clone)
    except Failure as failure:
        print(f"FAILED: {failure}")
        return 1
    print("PASSED: handseg nodes ran in ComfyUI")
    return 0


if __name__ == "__main__":
    sys.exit(main())
