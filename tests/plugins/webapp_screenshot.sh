#!/usr/bin/env bash
# Start the handseg web app, open it in headless Chromium, take two screenshots: the start page
# (OUT) and the page after uploading a synthetic photo (OUT with -results before .png). The app
# runs with the test model tiny-red (red pixels are hands) chosen by ?model=tiny-red, so the mask
# in the second shot is meaningful while the packaged model is untrained.
#   tests/plugins/webapp_screenshot.sh [OUT.png]     (default /tmp/app.png; PORT=8501, PYTHON=python)
# Needs Debian's chromium (apt-get install -y chromium) and the app's Python environment.
#
# Chromium's plain --screenshot with --virtual-time-budget shoots before Streamlit's websocket
# has delivered the page (a blank page), so Chromium is driven over its DevTools protocol instead
# and the shot waits until the app has finished running.
set -euo pipefail

out="${1:-/tmp/app.png}"
port="${PORT:-8501}"
python="${PYTHON:-python}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"

PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" "$python" -c \
    "import sys, pathlib, tiny_model; tiny_model.write_red_model(pathlib.Path(sys.argv[1]))" "$work/models"
HANDSEG_MODELS="$work/models" setsid "$python" -m handseg_cli app --port "$port" --no-browser >"$work/server.log" 2>&1 &
server=$!
stop() {
    kill -TERM -- "-$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT

for _ in $(seq 120); do
    if "$python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/_stcore/health', timeout=2)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then
        echo "the web app stopped:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 1
done

PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}" "$python" - "http://127.0.0.1:$port/?model=tiny-red" "$out" "$work" <<'PY'
import asyncio
import base64
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import websockets
from PIL import Image

from tiny_model import hand_picture

url, out, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
SETTLED = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"
STARTED = "!!document.querySelector('[data-testid=\"stFileUploader\"]') && " + SETTLED
RESULTS = "document.querySelectorAll('[data-testid=\"stImage\"]').length >= 3 && " + SETTLED


class Page:
    def __init__(self, socket):
        self.socket, self.count = socket, 0

    async def call(self, method, **params):
        self.count += 1
        await self.socket.send(json.dumps({"id": self.count, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == self.count:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def wait_for(self, expression, seconds=120):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            answer = await self.call("Runtime.evaluate", expression=expression)
            if answer["result"].get("value"):
                await asyncio.sleep(1)
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the page never satisfied: {expression}")

    async def shoot(self, path, width, height):
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await asyncio.sleep(1)
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {path}")


async def main():
    profile = work / "profile"
    chromium = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1400,1000", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        for _ in range(300):
            if active.exists() and active.read_text().strip():
                break
            time.sleep(0.1)
        port = active.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        target = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
            page = Page(socket)
            await page.call("Page.navigate", url=url)
            await page.wait_for(STARTED)
            await page.shoot(out, 1400, 1000)

            photo = work / "hands.png"
            Image.fromarray(hand_picture(640, 480)[0]).save(photo)
            root = await page.call("DOM.getDocument")
            found = await page.call("DOM.querySelector", nodeId=root["root"]["nodeId"], selector="section.main input[type=file], [data-testid='stMain'] input[type=file]")
            await page.call("DOM.setFileInputFiles", nodeId=found["nodeId"], files=[str(photo)])
            await page.wait_for(RESULTS)
            await page.shoot(out.with_name(out.stem + "-results.png"), 1400, 1300)
    finally:
        chromium.terminate()
        chromium.wait()


asyncio.run(main())
PY
