"""Write tests/data/finder_golden.json: MediaPipe's own hand landmarks on the test photos.

    python -m venv mp && mp/bin/pip install mediapipe==0.10.21
    mp/bin/python tests/data/make_finder_golden.py

tests/core/test_finder.py holds handseg's finder (the same two models, converted to ONNX, with
the steps around them written here) to these: MediaPipe Hands' static-image mode, model
complexity 1, one pass per photo. mediapipe needs numpy < 2, hence a venv of its own; nothing in
handseg imports it.
"""

import json
from pathlib import Path

import cv2
import mediapipe as mp

HERE = Path(__file__).parent
PHOTOS = ["../../examples/cards.jpg", "../../examples/hand.jpg", "golden/hands11k_fair_Hand_0000006.jpg",
          "golden/hands11k_dark_Hand_0001040.jpg", "golden/egohands_padova_12.jpg", "golden/face_no_hand.jpg",
          *sorted(str(p.relative_to(HERE)) for p in (HERE / "hands").glob("*.jpg"))]

out = {}
with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=4, model_complexity=1,
                              min_detection_confidence=0.5) as hands:
    for name in PHOTOS:
        bgr = cv2.imread(str(HERE / name))
        h, w = bgr.shape[:2]
        result = hands.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        out[name] = [[[round(p.x * w, 2), round(p.y * h, 2)] for p in hand.landmark]
                     for hand in result.multi_hand_landmarks or []]
(HERE / "finder_golden.json").write_text(json.dumps(out, indent=1) + "\n")
print({k: len(v) for k, v in out.items()})
