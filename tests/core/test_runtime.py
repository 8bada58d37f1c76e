"""Every network handseg runs gets the same ONNX Runtime settings: no spinning between sessions."""

import handseg_core
from handseg_core.finder import load_finder
from handseg_core.runtime import session_options

SPINNING = "session.intra_op.allow_spinning"


def test_session_options_turn_spinning_off_and_set_threads():
    options = session_options(2)
    assert options.get_session_config_entry(SPINNING) == "0" and options.intra_op_num_threads == 2
    assert session_options(None).intra_op_num_threads == 0  # ONNX Runtime's default


def test_the_segmenter_its_per_hand_network_and_the_finder_use_them():
    session = handseg_core.load_model(device="cpu", threads=2)
    assert session._options.get_session_config_entry(SPINNING) == "0"  # shared with the per-hand network
    assert session._hand_segmenter() is not None
    finder = load_finder(threads=2)
    for ort_session in finder._sessions.values():
        assert ort_session.get_session_options().get_session_config_entry(SPINNING) == "0"
