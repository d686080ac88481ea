"""Image files: reading any image as RGB, and the cheap check of every catalog image.

The image check (``check_images=True``) is cheap: the file size, PIL's header parse (format,
mode, width, height) and the last bytes of the file (a JPEG must end with the EOI marker
``FFD9``, a PNG with its ``IEND`` chunk). Only a file that fails the tail check, or a GIF/BMP,
is fully decoded. Reasons: ``"missing image file"``, ``"empty file"``, ``"truncated image"``,
``"not an image: ..."``, ``"unsupported image format: ..."`` (TensorFlow decodes only JPEG, PNG,
GIF and BMP), ``"corrupt image: ..."``. Grayscale, CMYK, RGBA and palette images are valid;
:func:`read_image_rgb` returns them as RGB. With ``cache_dir`` the result of each check is
cached in ``cache_dir/image_checks_v1.csv``, keyed by (path, size, mtime): a changed file is
checked again.

:func:`read_thumbnail` reads an image shrunk to fit a square (aspect kept): what figures draw.
:func:`id_to_stem` is the one way an id becomes a file name (``label/eight/482`` ->
``label%2Feight%2F482``); :func:`stem_to_id` reads it back.
"""

from __future__ import annotations
import hashlib
import io
import os
from typing import Any
import stat
import struct
import time
import warnings
from pathlib import Path
import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from fashion_utils.atomic import atomic_path, write_csv_atomic
from fashion_utils.checks import positive_int


PathLike = str | os.PathLike

# File extensions looked for, in order of preference when one id has several files.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
# Formats (as PIL names them) that TensorFlow's ``tf.io.decode_image`` reads.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "BMP")  # MPO: a JPEG with extra views


REASON_MISSING_IMAGE = "missing image file"
REASON_EMPTY = "empty file"
REASON_TRUNCATED = "truncated image"
REASON_DUPLICATE = "duplicate id (first row kept)"
REASON_MISSING_ID = "missing id"

CHECK_CACHE_NAME = "image_checks_v1.csv"  # bump the version when the check changes
_CACHE_COLUMNS = ["path", "size", "mtime_ns", "reason", "width", "height", "mode", "format"]
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_TAIL_BYTES = 32


# --------------------------------------------------------------------------- images


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode as RGB: alpha dropped, palette expanded, 16-bit scaled to 8 bits."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(img).astype(np.int64)
        return Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "F":
        return Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError:  # modes without a direct conversion (e.g. "PA")
        return img.convert("RGBA").convert("RGB")


#: The EXIF tag that says how a camera held the photo (1: upright; 2-8: flipped or turned).
EXIF_ORIENTATION_TAG = 0x0112


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation of an open image (1, upright, when it has none or a bad one)."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError, struct.error):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def file_exif_orientation(path: PathLike) -> int:
    """:func:`exif_orientation` of a file (read from its header only); 1 for a file PIL
    cannot open."""
    try:
        with Image.open(path) as img:
            return exif_orientation(img)
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError):
        return 1


def is_turned_jpeg(path: PathLike) -> bool:
    """Whether a file is a JPEG (where cameras write the tag) whose EXIF orientation is not
    upright: a cheap check for whole catalogs (other files cost one 3-byte read)."""
    try:
        with open(path, "rb") as fh:
            if fh.read(3) != b"\xff\xd8\xff":
                return False
    except OSError:
        return False
    return file_exif_orientation(path) != 1


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned the way its EXIF orientation says it was taken (a phone photo the right
    way up); itself when it is upright already."""
    return ImageOps.exif_transpose(img) if exif_orientation(img) != 1 else img


def read_image_rgb(path: PathLike, *, size: int | None = None) -> np.ndarray:
    """Read any image as an RGB ``uint8`` array, the right way up.

    Grayscale, CMYK, palette and 16-bit images are converted; an alpha channel is dropped
    (as ``tf.io.decode_image(..., channels=3)`` does); the EXIF orientation of a phone photo
    is applied (``PIL.ImageOps.exif_transpose``).

    Args:
        path: the image file.
        size: side of a square resize (bilinear; the aspect ratio is not kept), or ``None``
            for the original size.

    Returns:
        An array of shape ``(H, W, 3)`` (``(size, size, 3)`` with ``size``), dtype ``uint8``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a bad ``size``, or a file that cannot be decoded.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0):
        raise ValueError(f"size must be a positive integer or None. Received: size={size!r}")
    with open(path, "rb") as fh:
        try:
            with Image.open(fh) as img:
                if size is not None and img.format == "JPEG":
                    # DCT scaling: decode at 1/2, 1/4 or 1/8 scale when that still covers the
                    # target size (16x faster for 1800x2400 photos at 96 px).
                    img.draft("RGB", (int(size), int(size)))
                rgb = _to_rgb(_upright(img))
                if size is not None and rgb.size != (size, size):
                    rgb = rgb.resize((int(size), int(size)), Image.Resampling.BILINEAR)
                array = np.array(rgb, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot decode image {os.fspath(path)!r}: {exc}") from exc
    return array


def read_thumbnail(path: PathLike, *, max_side: int) -> np.ndarray:
    """Read any image as RGB ``uint8``, the right way up (EXIF orientation applied), shrunk so
    that neither side exceeds ``max_side``.

    The aspect ratio is kept and small images are not enlarged. JPEGs are decoded at the
    smallest DCT scale that covers ``max_side``, so a full-size 1800x2400 photo costs little.

    Args:
        path: the image file.
        max_side: the longest side of the result, in pixels (>= 8).

    Returns:
        An array of shape ``(H, W, 3)`` with ``max(H, W) <= max_side``.
    """
    side = positive_int("max_side", max_side, minimum=8)
    with open(path, "rb") as fh:
        try:
            with Image.open(fh) as img:
                if img.format == "JPEG":
                    img.draft("RGB", (side, side))
                rgb = _to_rgb(_upright(img))
                rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
                return np.array(rgb, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot decode image {os.fspath(path)!r}: {exc}") from exc


#: The largest photo the explorer takes: Jupyter's websocket refuses messages over 10 MiB
#: (tornado's ``websocket_max_message_size``), and an upload travels as one message.
MAX_UPLOAD_BYTES = 8 * 2**20
#: The longest side an uploaded photo is stored at (it is shown at most at this size).
UPLOAD_MAX_SIDE = 1024


def human_bytes(n: int) -> str:
    """``n`` bytes as ``'3.2 MiB'`` or ``'195.3 KiB'``."""
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def save_uploaded_image(content: bytes, *, name: str, folder: PathLike,
                        max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Check an uploaded photo and store it as an RGB PNG (at most ``UPLOAD_MAX_SIDE`` px), the
    right way up: a phone photo's EXIF orientation is applied, since the PNG keeps no EXIF.

    Args:
        content: the file's bytes (e.g. an ipywidgets ``FileUpload`` value's ``content``).
        name: the file name the user gave (for messages only).
        folder: where the PNG goes (a content-addressed name: the same photo, the same file).
        max_bytes: the largest file accepted.

    Returns:
        The PNG's path.

    Raises:
        ValueError: an empty or too large file, or one that is not a decodable image; the
            message names the file.
    """
    data = bytes(content)
    limit = positive_int("max_bytes", max_bytes)
    if not data:
        raise ValueError(f"{name!r} is empty: choose a photo (JPEG, PNG, ...)")
    if len(data) > limit:
        raise ValueError(f"{name!r} is {human_bytes(len(data))}; photos up to "
                         f"{human_bytes(limit)} are accepted: shrink it first")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (UPLOAD_MAX_SIDE, UPLOAD_MAX_SIDE))
            rgb = _to_rgb(_upright(img)).copy()  # decoded now, while the file is open
            rgb.thumbnail((UPLOAD_MAX_SIDE, UPLOAD_MAX_SIDE), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as exc:
        raise ValueError(f"{name!r} is not an image this study can read: {exc}") from exc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"upload_{hashlib.sha1(data).hexdigest()[:16]}.png"
    if not target.exists():
        with atomic_path(target, suffix=".png") as tmp:
            rgb.save(tmp, format="PNG")
    return target


# --------------------------------------------------------------------------- ids as file names

#: Characters an id keeps in its file stem; every other one is written ``%XX`` (its UTF-8 bytes).
STEM_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
#: Longest stem written out in full; a longer one is cut and ends in ``~`` + 16 hex digits.
MAX_STEM_LENGTH = 120
_HASH_MARK = "~"  # never in an escaped stem ("~" itself is written %7E)


def id_to_stem(item_id: str) -> str:
    """The file stem of an id: safe on every file system, unique, and read back by :func:`stem_to_id`.

    Letters, digits, ``-``, ``_`` and ``.`` stay; every other character (``/``, spaces,
    ``%``, non-ASCII letters...) is written as ``%XX`` per UTF-8 byte, and so is a leading
    ``.`` (no hidden files, no ``.`` or ``..``). Two different ids never get the same stem.
    A stem longer than :data:`MAX_STEM_LENGTH` is cut and ends in ``~`` and 16 hex digits of
    the id's SHA-256 (still unique; :func:`stem_to_id` cannot read it back).

    >>> id_to_stem("label/eight/482")
    'label%2Feight%2F482'
    >>> id_to_stem("15970")
    '15970'
    """
    if not isinstance(item_id, str) or not item_id:
        raise ValueError(f"An id must be a non-empty string. Received: item_id={item_id!r}")
    parts = [ch if ch in STEM_SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
             for ch in item_id]
    if parts[0] == ".":
        parts[0] = "%2E"
    stem = "".join(parts)
    if len(stem) <= MAX_STEM_LENGTH:
        return stem
    digest = hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:16]
    return f"{stem[:MAX_STEM_LENGTH - 17]}{_HASH_MARK}{digest}"


def stem_to_id(stem: str) -> str | None:
    """The id whose :func:`id_to_stem` is ``stem``; ``None`` for a cut (hashed) stem or a name
    that :func:`id_to_stem` does not write."""
    if not isinstance(stem, str) or not stem or _HASH_MARK in stem:
        return None
    raw = bytearray()
    i = 0
    while i < len(stem):
        if stem[i] == "%" and len(stem[i + 1:i + 3]) == 2:
            try:
                raw.append(int(stem[i + 1:i + 3], 16))
            except ValueError:
                return None
            i += 3
        else:
            raw += stem[i].encode("utf-8")
            i += 1
    try:
        item_id = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return item_id if item_id and id_to_stem(item_id) == stem else None


def _inspect_image(path: str, size: int) -> tuple[str, int, int, str, str]:
    """Check one existing file; returns ``(reason, width, height, mode, format)``, reason "" if usable."""
    if size == 0:
        return REASON_EMPTY, 0, 0, "", ""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(max(size - _TAIL_BYTES, 0))
            tail = fh.read()
            fh.seek(0)
            looks_like_image = head.startswith(_JPEG_MAGIC) or head.startswith(_PNG_MAGIC)
            try:
                with Image.open(fh) as img:
                    fmt, mode, (width, height) = img.format or "", img.mode, img.size
            except Image.DecompressionBombError as exc:
                return f"image too large: {exc}", 0, 0, "", ""
            except UnidentifiedImageError:
                if looks_like_image:
                    return REASON_TRUNCATED, 0, 0, "", ""
                return f"not an image: unrecognised file content (starts with {head[:8]!r})", 0, 0, "", ""
            except (OSError, SyntaxError, ValueError, struct.error) as exc:
                if looks_like_image:
                    return REASON_TRUNCATED, 0, 0, "", ""
                return f"not an image: {exc}", 0, 0, "", ""
            info = (width, height, mode, fmt)
            if fmt not in SUPPORTED_FORMATS:
                return (f"unsupported image format: {fmt or 'unknown'}", *info)
            if width <= 0 or height <= 0:
                return (f"not an image: size {width}x{height}", *info)
            stripped = tail.rstrip(b"\x00")
            if fmt in ("JPEG", "MPO") and stripped.endswith(b"\xff\xd9"):
                return ("", *info)
            if fmt == "PNG" and stripped.endswith(_PNG_END):
                return ("", *info)
            # Tail check failed (or GIF/BMP): decode fully to tell truncation from trailing bytes.
            fh.seek(0)
            try:
                with Image.open(fh) as img:
                    img.load()
            except (OSError, SyntaxError, ValueError, struct.error) as exc:
                if fmt in ("JPEG", "MPO", "PNG") or "truncated" in str(exc):
                    return (REASON_TRUNCATED, *info)
                return (f"corrupt image: {exc}", *info)
            return ("", *info)
    except OSError as exc:
        return f"unreadable file: {exc.strerror or exc}", 0, 0, "", ""


def check_image_file(path: PathLike) -> str | None:
    """Cheaply check that a file is a usable image (see the module docstring).

    Args:
        path: the file.

    Returns:
        ``None`` for a usable image, otherwise the reason (e.g. ``"truncated image"``).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return REASON_MISSING_IMAGE
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reason = _inspect_image(os.fspath(path), st.st_size)[0]
    return reason or None


def _read_check_cache(cache_file: Path, notes: list[str]) -> dict[str, tuple]:
    if not cache_file.is_file():
        return {}
    try:
        table = pd.read_csv(cache_file, dtype=str, keep_default_na=False)
        if list(table.columns) != _CACHE_COLUMNS:
            raise ValueError(f"unexpected columns {list(table.columns)}")
        return {
            path: (int(size), int(mtime), reason, int(w), int(h), mode, fmt)
            for path, size, mtime, reason, w, h, mode, fmt in table.itertuples(index=False)
        }
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        notes.append(f"image check cache {cache_file} unreadable ({exc}); checked again")
        return {}


def _write_check_cache(cache_file: Path, entries: dict[str, tuple]) -> None:
    table = pd.DataFrame([(path, *values) for path, values in entries.items()], columns=_CACHE_COLUMNS)
    write_csv_atomic(table, cache_file)


def check_image_files(paths: list[str], *, check_images: bool, cache_dir: PathLike | None,
                      report: Any) -> list[tuple[str, int, int, str, str]]:
    """Check every path; returns ``(reason, width, height, mode, format)`` per path.

    ``report`` (a ``data.LoadReport``) receives the counts: ``n_images_checked``,
    ``n_from_cache``, ``check_seconds``, and ``notes`` about the check cache.
    """
    start = time.perf_counter()
    cache_file = Path(cache_dir).expanduser().resolve() / CHECK_CACHE_NAME if cache_dir is not None else None
    cache = _read_check_cache(cache_file, report.notes) if (cache_file and check_images) else {}
    changed = False
    results: list[tuple[str, int, int, str, str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns about odd EXIF data etc.; the check decides
        for path in paths:
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                results.append((REASON_MISSING_IMAGE, 0, 0, "", ""))
                continue
            if not stat.S_ISREG(st.st_mode):
                results.append(("not a regular file", 0, 0, "", ""))
                continue
            if not check_images:
                results.append(("", 0, 0, "", ""))
                continue
            hit = cache.get(path)
            if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                results.append(hit[2:])
                report.n_from_cache += 1
            else:
                result = _inspect_image(path, st.st_size)
                cache[path] = (st.st_size, st.st_mtime_ns, *result)
                changed = True
                results.append(result)
            report.n_images_checked += 1
    if cache_file is not None and changed:
        _write_check_cache(cache_file, cache)
    report.check_seconds = time.perf_counter() - start
    return results


