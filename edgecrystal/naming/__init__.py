"""Plate, well, drop and inspection from an image's file name and folders.

Imagers name their files in a few well-known ways (Formulatrix Rock Maker's image store,
Diamond/XChem's export of it, Rigaku Minstrel, the synthetic plates of `edgecrystal synth
--plate`); a site adds its own as a regular expression with named groups. A name no layout
understands is still indexed (plate = its folder), but its well stays empty and the reason says
so: a wrong well is worse than none.
"""

from .layouts import BUILT_IN_LAYOUTS, ImageName, NameReader, well_name

__all__ = ["BUILT_IN_LAYOUTS", "ImageName", "NameReader", "well_name"]
