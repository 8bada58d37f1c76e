"""The handseg web app: upload photos, see their hand masks and cut-outs, download them.

A Streamlit script; start it with `handseg app` (or `streamlit run` on this file).
"""

from __future__ import annotations

import streamlit as st

import handseg_core
from handseg_core import HandsegError, HandSegmenter, Refinement, registry
from handseg_core.options import FINE_INPUT_SIZE, REFINEMENT, Option, refinement_from
from handseg_plugins.webapp.process import UPLOAD_TYPES, AppBackground, Processed, download_names, process, zip_results

BACKGROUNDS = ("Transparent", "White", "Colour", "Image")
# The sliders of the sidebar's Refinement box; their ranges, defaults and help are REFINEMENT's.
SLIDERS = ("dilate", "erode", "feather", "min_area", "fill_holes")


@st.cache_resource(show_spinner="Loading the model...")
def get_model(name: str) -> HandSegmenter:
    """The model, loaded once per server and shared by every visitor; only a listed model's
    name is taken (a visitor's value is never a path)."""
    return handseg_core.load_model(registry.find_listed(name).name)


@st.cache_data(max_entries=64, show_spinner=False)
def process_cached(model: str, name: str, data: bytes, refinement: Refinement, background: AppBackground,
                   input_size: int | None = None) -> Processed:
    return process(get_model(model), name, data, refinement, background, input_size)


def slider(option: Option) -> float:
    """A slider built from the option's description; fractions shown in percent."""
    if option.name == "threshold":
        return st.slider(option.title, option.low, option.top, option.default, option.step, key=option.name,
                         help=option.help)
    percent = st.slider(option.title, option.low * 100, option.top * 100, round(option.default * 100, 4),
                        option.step * 100, key=option.name, help=option.help, format="%.2f%%")
    return percent / 100


def default_index(names: list[str], default: str | None) -> int:
    """The model named by ?model=NAME in the address, else the default (first in the menu)."""
    requested = st.query_params.get("model")
    if requested in names:
        return names.index(requested)
    return names.index(default) if default in names else 0


def choose_model() -> str:
    specs, default = registry.models_for_menu()
    models = {spec.name: spec for spec in specs}
    names = list(models)
    if not names:
        st.error("No handseg model is installed: reinstall handseg or set HANDSEG_MODELS to a models folder.")
        st.stop()
    name = st.selectbox("Model", names, index=default_index(names, default), key="model")
    if models[name].description:
        st.caption(models[name].description)
    return name


def choose_refinement() -> Refinement:
    values = {"threshold": slider(REFINEMENT["threshold"])}
    with st.expander("Refinement", expanded=True):
        values.update((name, slider(REFINEMENT[name])) for name in SLIDERS)
    return refinement_from(values)


def choose_input_size() -> int | None:
    fine = st.checkbox("Small hands in a large photo", key="fine",
                       help=f"The network sees photos larger than 512 px at {FINE_INPUT_SIZE} px: finer masks of small "
                            "hands in scenes and video frames, in about twice the time. Leave it off for close-ups "
                            "and portraits, where it finds the hands less well. Smaller photos are not changed.")
    return FINE_INPUT_SIZE if fine else None


def choose_background() -> AppBackground:
    choice = st.radio("Cut-out background", BACKGROUNDS, horizontal=True, key="background")
    if choice == "White":
        return "white"
    if choice == "Colour":
        return st.color_picker("Colour", "#00B140", key="background_colour")
    if choice == "Image":
        upload = st.file_uploader("Background image", type=list(UPLOAD_TYPES), key="background_image")
        if upload is None:
            st.caption("No background image yet: the cut-out stays transparent.")
            return None
        return upload.getvalue()
    return None


def show(item: Processed, index: int) -> None:
    st.subheader(item.name)
    original, mask, cutout = st.columns(3)
    original.image(item.original, caption="Original")
    mask.image(item.mask, caption="Mask")
    cutout.image(item.cutout, caption="Cut-out")
    st.caption(f"Hands cover {item.hand_fraction:.1%} of the photo.")
    mask_name, cutout_name = download_names(item.stem)
    left, right = st.columns(2)
    left.download_button("Download mask (PNG)", item.mask_png, mask_name, "image/png", key=f"mask_{index}")
    right.download_button("Download cut-out (PNG)", item.cutout_png, cutout_name, "image/png", key=f"cutout_{index}")


def main() -> None:
    st.set_page_config(page_title="handseg", layout="wide")
    st.title("handseg: cut hands out of photos")
    with st.sidebar:
        model = choose_model()
        refinement = choose_refinement()
        input_size = choose_input_size()
        background = choose_background()
    uploads = st.file_uploader("Photos", type=list(UPLOAD_TYPES), accept_multiple_files=True, key="photos")
    if not uploads:
        st.info("Upload one or more photos to find the hands in them.")
        return
    try:
        get_model(model)
    except HandsegError as exc:
        st.error(f"Cannot load the model: {exc}")
        return
    done: list[Processed] = []
    for index, upload in enumerate(uploads):
        try:
            with st.spinner(f"Finding the hands in {upload.name}..."):
                item = process_cached(model, upload.name, upload.getvalue(), refinement, background, input_size)
        except HandsegError as exc:
            st.error(str(exc))
            continue
        show(item, index)
        done.append(item)
    if done:
        st.divider()
        st.download_button("Download all (zip)", zip_results(done), "handseg-results.zip", "application/zip", key="zip")


main()
