"""Keras model builders: the paper's U-Net finder and the Inception-V3 classifier.

Both take uint8 NHWC pixels; scaling to the network's range is the first layer, so it is exported
with the model into ONNX and TensorRT and no runtime can forget it. Imports Keras: training and
conversion only, never the runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import UsageError, one_line
from .interface import CLASSIFIER_OUTPUT, CRYSTALS_OUTPUT, FINDER_OUTPUT, INPUT_NAME

__all__ = ["CLASSIFIER_OUTPUT", "CRYSTALS_OUTPUT", "FINDER_OUTPUT", "INPUT_NAME",
           "build_classifier", "build_crystals", "build_finder", "load_model"]
# keras.applications.InceptionV3 refuses smaller inputs.
MIN_INCEPTION_SIZE = 75


def _keras() -> Any:
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "keras" not in sys.modules:
        with _quiet_native_stderr():
            import keras
    import keras

    return keras


# TensorFlow's native libraries log through absl before TF_CPP_MIN_LOG_LEVEL applies; these
# lines would turn every one-line error of a training command into three.
_TF_NOISE = (
    "WARNING: All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "cpu_feature_guard",
    "To enable the following instructions",
    "This TensorFlow binary is optimized",
)


class _quiet_native_stderr:
    """Capture fd 2 while TensorFlow loads; re-emit whatever is not its start-up chatter."""

    def __enter__(self) -> None:
        import os
        import sys
        import tempfile

        self.saved = None
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return
        self.tmp = tempfile.TemporaryFile()
        os.dup2(self.tmp.fileno(), 2)

    def __exit__(self, *exc: object) -> None:
        import os
        import sys

        if self.saved is None:
            return
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.tmp.seek(0)
        text = self.tmp.read().decode("utf-8", errors="replace")
        self.tmp.close()
        keep = [ln for ln in text.splitlines()
                if ln.strip() and not any(n in ln for n in _TF_NOISE)]
        if keep:
            sys.stderr.write("\n".join(keep) + "\n")


def build_finder(input_size: int = 512, base_filters: int = 64, depth: int = 4) -> Any:
    """U-Net: `depth` down units (two 3x3 conv+BN+ReLU, 2x2 max pool, channels doubling), a
    bottleneck, `depth` up units (2x2 up-convolution halving channels, skip concatenation, two
    3x3 conv+BN+ReLU) and a 1x1 sigmoid conv giving the drop probability per pixel."""
    keras = _keras()
    layers = keras.layers
    if input_size % (2**depth):
        raise UsageError(f"finder input size {input_size} must be divisible by {2**depth}")

    def conv_block(x: Any, filters: int, name: str) -> Any:
        for i in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
            x = layers.ReLU(name=f"{name}_relu{i}")(x)
        return x

    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name=INPUT_NAME)
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    skips = []
    for level in range(depth):
        x = conv_block(x, base_filters * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = conv_block(x, base_filters * 2**depth, "bottom")
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = conv_block(x, filters, f"upconv{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name=FINDER_OUTPUT, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="finder_unet")


def build_crystals(input_size: int = 160, base_filters: int = 8, depth: int = 3,
                   stem_stride: int = 2) -> Any:
    """The crystal model: a light U-Net that must cost a fraction of the classifier. A strided
    3x3 stem halves the crop at once (crystal pixels are never single pixels at the crop's
    scale), then `depth` - 1 stride-2 depthwise-separable units (channels x1.5 each) and one
    dilated unit at the bottom for context (a crystal's edge vs a bubble's ring); the decoder
    goes back up by nearest upsampling + skip addition + pointwise conv (no transposed convs,
    no concatenation: both cost more than they gave), a 1x1 logit at half resolution, and a
    bilinear upsampling to the input size before the sigmoid. Input: uint8 pixels
    (batch, N, N, 3), scaled inside; output: (batch, N, N, 1) crystal probability."""
    keras = _keras()
    layers = keras.layers
    if stem_stride not in (2, 4):
        raise UsageError(f"crystal model stem stride {stem_stride} must be 2 or 4")
    step = stem_stride * 2 ** (depth - 1)
    if depth < 2 or input_size % step:
        raise UsageError(f"crystal model input size {input_size} must be divisible by "
                         f"{step} (depth {depth} >= 2, stem stride {stem_stride})")

    def bn_relu(x: Any, name: str) -> Any:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    def separable(x: Any, filters: int, stride: int, name: str, dilation: int = 1) -> Any:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   dilation_rate=dilation, name=f"{name}_dw")(x)
        x = bn_relu(x, f"{name}_dw")
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
        return bn_relu(x, f"{name}_pw")

    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name=INPUT_NAME)
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    x = layers.Conv2D(base_filters, stem_stride + 1, strides=stem_stride, padding="same",
                      use_bias=False, name="stem")(x)
    x = bn_relu(x, "stem")
    x = separable(x, base_filters, 1, "down0")
    skips = [x]
    widths = [base_filters]
    for level in range(1, depth):
        widths.append(round(widths[-1] * 1.5 / 4) * 4)
        x = separable(x, widths[-1], 2, f"down{level}")
        skips.append(x)
    x = separable(x, widths[-1], 1, "bottom", dilation=2)
    for level in reversed(range(depth - 1)):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(x)
        x = layers.Conv2D(widths[level], 1, use_bias=False, name=f"up{level}_pw")(x)
        x = layers.Add(name=f"skip{level}")([x, skips[level]])
        x = bn_relu(x, f"up{level}")
        x = separable(x, widths[level], 1, f"upconv{level}")
    x = layers.Conv2D(1, 1, name="logit")(x)
    x = layers.UpSampling2D(stem_stride, interpolation="bilinear", name="full")(x)
    outputs = layers.Activation("sigmoid", name=CRYSTALS_OUTPUT, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="crystals_unet")


# Classifier backbones from keras.applications, built without weights: the paper's Inception-V3
# and MobileNetV3-Small, an edge backbone (~25x fewer FLOPs at the same input size).
BACKBONES = ("inception_v3", "mobilenet_v3_small")
MIN_INPUT_SIZE = {"inception_v3": MIN_INCEPTION_SIZE, "mobilenet_v3_small": 32}
BACKBONE_NAMES = {"inception_v3": "Inception-V3", "mobilenet_v3_small": "MobileNetV3-Small"}


def build_classifier(
    num_classes: int,
    input_size: int = 299,
    imagenet_weights: str | Path | None = None,
    dropout: float = 0.2,
    backbone: str = "inception_v3",
) -> Any:
    """A keras.applications backbone (weights=None) with a new head for `num_classes`. With
    `imagenet_weights` (a Keras no-top weights file, local, or "imagenet" for Keras' own
    download and cache), the backbone starts from ImageNet."""
    keras = _keras()
    layers = keras.layers
    if backbone not in BACKBONES:
        raise UsageError(f"unknown classifier backbone {backbone!r} (choose "
                         f"{', '.join(BACKBONES)})")
    if input_size < MIN_INPUT_SIZE[backbone]:
        raise UsageError(f"classifier input size {input_size} is below "
                         f"{BACKBONE_NAMES[backbone]}'s minimum of {MIN_INPUT_SIZE[backbone]}")
    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name=INPUT_NAME)
    shape = (input_size, input_size, 3)
    # Both backbones' own range: [-1, 1] (MobileNetV3's built-in rescaling is left out so
    # that the scaling is one visible layer, as for Inception-V3).
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    if backbone == "inception_v3":
        net = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=shape,
                                             pooling="avg")
    else:
        net = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                  input_shape=shape, pooling="avg",
                                                  include_preprocessing=False)
    if imagenet_weights is not None:
        load_backbone_weights(net, resolve_imagenet_weights(imagenet_weights, backbone),
                              backbone)
    x = net(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name=CLASSIFIER_OUTPUT,
                           dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"classifier_{backbone}")


IMAGENET = "imagenet"
NOTOP_FILES = {"inception_v3": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
               "mobilenet_v3_small": "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"}


def resolve_imagenet_weights(value: str | Path, backbone: str = "inception_v3") -> Path:
    """`--imagenet-weights`: a local no-top weights file, or "imagenet" for the file Keras
    itself downloads and caches (~/.keras/models, or $KERAS_HOME/models): the first use needs
    the network, later ones read the cache. Offline without a cached copy: one UsageError line
    that says to pass a local file."""
    if str(value) != IMAGENET:
        path = Path(value)
        if not path.is_file():
            raise UsageError(f"ImageNet weights file {path} does not exist")
        return path
    keras = _keras()
    before = _cached_notop(backbone)
    if before is not None:
        return before
    builder = {"inception_v3": keras.applications.InceptionV3,
               "mobilenet_v3_small": keras.applications.MobileNetV3Small}[backbone]
    extra = {"include_preprocessing": False} if backbone == "mobilenet_v3_small" else {}
    try:
        # Keras' own path: building with weights="imagenet" fetches the no-top file into its
        # cache with keras.utils.get_file and checks the file's hash.
        builder(include_top=False, weights=IMAGENET, input_shape=(224, 224, 3), **extra)
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"could not download the ImageNet weights through Keras ({reason.split(': ')[-1]}); "
            f"offline, pass a local file instead: --imagenet-weights "
            f"PATH/{NOTOP_FILES[backbone]}") from None
    cached = _cached_notop(backbone)
    if cached is None:
        raise UsageError(f"Keras did not leave {NOTOP_FILES[backbone]} in its cache "
                         f"({_keras_cache()}); pass a local file with --imagenet-weights")
    return cached


def _keras_cache() -> Path:
    import os

    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _cached_notop(backbone: str) -> Path | None:
    path = _keras_cache() / NOTOP_FILES[backbone]
    return path if path.is_file() else None


def load_backbone_weights(backbone: Any, path: str | Path,
                          name: str = "inception_v3") -> None:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"ImageNet weights file {path} does not exist")
    import warnings

    try:
        with warnings.catch_warnings():
            # Keras warns per layer it cannot match before failing; the error below says it once.
            warnings.simplefilter("ignore")
            backbone.load_weights(str(path))
    except (ValueError, OSError, KeyError) as exc:
        first = one_line(exc).split(" Example error message")[0]
        raise UsageError(
            f"{path} does not fit {BACKBONE_NAMES.get(name, name)} without top "
            f"(expected {NOTOP_FILES.get(name, 'its no-top weights file')}): {first}"
        ) from None


def count_flops(model: Any) -> int:
    """Multiply-adds x 2 of the conv and dense layers for one image (what the profiles compare)."""
    total = 0
    for layer in _walk(model):
        cls = type(layer).__name__
        if cls in ("Conv2D", "Conv2DTranspose"):
            out = layer.output.shape
            k = layer.kernel.shape  # kh, kw, in, out (Conv2DTranspose: kh, kw, out, in)
            kh, kw = k[0], k[1]
            cin = k[2] if cls == "Conv2D" else k[3]
            cout = out[-1]
            # A transposed conv does its multiply-adds once per input position.
            grid = out if cls == "Conv2D" else layer.input.shape
            positions = grid[1] * grid[2]
            total += 2 * kh * kw * cin * cout * positions
        elif cls == "Dense":
            total += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return int(total)


def _walk(model: Any) -> Any:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _walk(layer)
        else:
            yield layer


def load_model(path: str | Path) -> Any:
    keras = _keras()
    return keras.models.load_model(str(path), compile=False)
