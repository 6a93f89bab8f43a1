"""edgecrystal: score protein crystallization images where they are taken."""

__version__ = "0.1.0"

# Bumped whenever decoding, resizing or the crop step changes what a model sees; a bundle
# trained under another version is refused rather than silently fed different pixels.
# 2: each step at the resolution it needs (reduced JPEG decodes, the drop region found at the
# finder's resolution); a classifier trained under 1 lost 0.015 macro AUC fed version 2's crops.
# 3: the crop is cut from the finder input's decode whenever that is finer than the coarsest
# decode spanning the classifier input (one JPEG decode per image instead of two); the finder's
# input is unchanged.
PREPROCESS_VERSION = "3"

# MARCO's four classes, the default class list. The class list of a bundle is data
# (bundle.json), never this constant.
DEFAULT_CLASSES: tuple[str, ...] = ("clear", "crystals", "precipitate", "other")
