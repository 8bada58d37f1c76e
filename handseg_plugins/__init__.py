"""handseg's adapters for other programs: ComfyUI, GIMP, rembg."""
