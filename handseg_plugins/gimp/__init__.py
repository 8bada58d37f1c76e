"""handseg for GIMP 3: Filters ▸ Handseg ▸ Select hands..., Remove background around hands..., Hand mask as new layer...

GIMP runs plug-ins with its own Python. `handseg install gimp` (or `install()` from here) makes a
virtual environment for that Python, installs handseg into it and writes the plug-in folder
`<GIMP plug-ins folder>/handseg/`. The plug-in itself is `plugin.py`, which only runs inside GIMP;
this package imports nothing from GIMP.
"""

from handseg_plugins.gimp.install import install

__all__ = ["install"]
