"""Open each handseg template through a running ComfyUI's template browser, as a user does.

    python tests/plugins/comfyui/frontend_check.py [URL] [--shots DIR]

URL defaults to http://127.0.0.1:8188 (a ComfyUI with the handseg pack loaded). Headless Chromium
(Debian's `chromium`) is driven over its DevTools protocol (`websockets`, which the web app's
Streamlit brings): Templates, then Extensions > handseg, then each template's card. Each must
open with every node registered, no error dialog, and the widget values of the UI-format file;
a screenshot of the browser and of each opened graph goes to DIR (default: a temporary folder).
Prints PASSED or FAILED and exits 0 or 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from plugins.comfyui.workflows import FRONTEND_ONLY, NAMES, UI_FOLDERS, load  # noqa: E402

# Clicks the last leaf element whose text is exactly `text` (the template browser's nav entry or card title).
CLICK = """(text) => {
  const hits = [...document.querySelectorAll('body *')].filter(e => !e.children.length && e.innerText?.trim() === text);
  if (!hits.length) return false;
  hits[hits.length - 1].scrollIntoView(); hits[hits.length - 1].click(); return true;
}"""
GRAPH = """JSON.stringify({
  nodes: app.graph._nodes.map(n => ({type: n.type, registered: !!LiteGraph.registered_node_types[n.type],
                                     widgets: (n.widgets || []).map(w => w.value)})),
  dialogs: [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 200))})"""


class Page:
    def __init__(self, socket):
        self.socket, self.count = socket, 0

    async def call(self, method: str, **params) -> dict:
        self.count += 1
        await self.socket.send(json.dumps({"id": self.count, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == self.count:
                return message.get("result", {})

    async def js(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", {}).get("description", "script failed"))
        return result.get("result", {}).get("value")

    async def shot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode((await self.call("Page.captureScreenshot", format="png"))["data"]))

    async def wait_for(self, expression: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.js(expression) is True:
                return
            await asyncio.sleep(1)
        raise RuntimeError(f"timed out waiting for {expression}")


def expected_widgets(name: str) -> dict[str, list]:
    workflow = load(UI_FOLDERS[0] / f"{name}.json")
    return {node["type"]: node["widgets_values"] for node in workflow["nodes"] if node["type"].startswith("Handseg")}


async def check(url: str, shots: Path, port: int = 9339) -> list[str]:
    profile = tempfile.mkdtemp(prefix="handseg-chromium-")
    browser = subprocess.Popen(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000",
                                f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    problems = []
    try:
        for _ in range(60):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                break
            except OSError:
                time.sleep(0.5)
        target = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
            page = Page(socket)
            await page.call("Page.navigate", url=url)
            await page.wait_for("!!(window.app?.graph && Object.keys(LiteGraph.registered_node_types).length > 100)", 120)
            await asyncio.sleep(3)
            for name in NAMES:
                await page.js("app.extensionManager.command.execute('Comfy.BrowseTemplates').then(() => true)")
                await asyncio.sleep(3)
                if not await page.js(f"({CLICK})('handseg')"):
                    problems.append("the template browser has no handseg entry")
                    break
                await asyncio.sleep(2)
                await page.shot(shots / "template_browser.png")
                if not await page.js(f"({CLICK})({json.dumps(name)})"):
                    problems.append(f"{name}: no card in the template browser")
                    continue
                await asyncio.sleep(5)
                graph = json.loads(await page.js(GRAPH))
                await page.shot(shots / f"{name}.png")
                types = [node["type"] for node in graph["nodes"]]
                print(f"{name}: opened with {types}")
                if graph["dialogs"]:
                    problems.append(f"{name}: dialogs {graph['dialogs']}")
                if not all(node["registered"] for node in graph["nodes"] if node["type"] not in FRONTEND_ONLY):
                    problems.append(f"{name}: unregistered nodes in {types}")
                opened = {node["type"]: node["widgets"] for node in graph["nodes"]}
                for kind, values in expected_widgets(name).items():
                    if opened.get(kind) != values:
                        problems.append(f"{name}: {kind} widgets {opened.get(kind)}, the file has {values}")
    finally:
        browser.terminate()
        browser.wait()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8188")
    parser.add_argument("--shots", type=Path, default=None)
    args = parser.parse_args()
    shots = args.shots or Path(tempfile.mkdtemp(prefix="handseg-frontend-"))
    shots.mkdir(parents=True, exist_ok=True)
    problems = asyncio.run(check(args.url, shots))
    print(f"screenshots in {shots}")
    if problems:
        print("FAILED: " + "; ".join(problems))
        return 1
    print("PASSED: the handseg templates open from the template browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
