"""Near-duplicate images: perceptual hashes, their groups, and a top k of distinct products.

The real Kaggle catalog holds near-identical shots (one product in several colourways, studio
photos repeated under new ids); a top 5 that shows one shirt four times is a poor
recommendation even when every result has the right article type.

- :func:`dhash` is the difference hash of an image (64 bits at ``hash_size=8``): the picture
  shrunk to 9×8 grey pixels, one bit per horizontal neighbour pair (brighter or not). It
  survives recompression, resizing and small edits; :func:`image_hashes` hashes a catalog,
  with a cache keyed by each file's path, size and modification time.
- :func:`image_signatures` also keeps each picture shrunk to 16×16 grey pixels (its
  *thumbnail*), the evidence that confirms a pair.
- :func:`near_duplicate_groups` joins images whose hashes differ in at most ``max_distance``
  bits (union-find; candidate pairs found by multi-index hashing: two hashes within ``d`` bits
  agree exactly on at least one of ``d + 1`` blocks), so no all-pairs comparison is needed;
  given the thumbnails, a candidate pair joins only when the two thumbnails differ by at most
  ``max_difference`` grey levels on average. A 64-bit hash alone is too coarse for small or
  plain pictures (identical hashes join images of different article types, and chains at a
  few bits join thousands): the thumbnails confirm each pair. Notebook 05 reports the groups
  a catalog gives.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from fashion_utils.atomic import write_csv_atomic
from fashion_utils.checks import positive_int
from fashion_utils.catalog.image_files import read_image_rgb
from fashion_utils.progress import track

__all__ = ["HASH_CACHE_NAME", "MAX_DIFFERENCE", "THUMB_SIDE", "collapse_neighbours", "dhash",
           "image_signature", "group_summary", "hamming", "image_hashes", "image_signatures",
           "near_duplicate_groups"]

HASH_CACHE_NAME = "dhash_v4.csv"  # bump the version when the hash or the thumbnail changes (v4: EXIF applied)
#: Side of the grey thumbnail that confirms a candidate pair.
THUMB_SIDE = 16
#: Mean absolute grey difference (0-255) of the thumbnails of a confirmed near-duplicate pair.
MAX_DIFFERENCE = 4.0


def _grey(path: str | os.PathLike, side: int) -> Image.Image:
    """The file decoded once at ``side`` px (a JPEG at a reduced DCT scale), in grey."""
    return Image.fromarray(read_image_rgb(path, size=side)).convert("L")


def _dhash_of(grey: Image.Image, hash_size: int) -> int:
    small = grey.resize((hash_size + 1, hash_size), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def dhash(path: str | os.PathLike, *, hash_size: int = 8) -> int:
    """The difference hash of an image file (``hash_size ** 2`` bits, as an int).

    Raises:
        ValueError: a file that cannot be decoded (``image_files.read_image_rgb``'s message).
    """
    hash_size = positive_int("hash_size", hash_size, minimum=2)
    return _dhash_of(_grey(path, 16 * hash_size), hash_size)


def image_signature(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    """:func:`dhash` (64 bits) and the :data:`THUMB_SIDE` × :data:`THUMB_SIDE` grey thumbnail
    (``uint8``) of one file, from a single decode."""
    grey = _grey(path, 8 * THUMB_SIDE)  # the 128 px dhash decodes at hash_size=8
    thumb = grey.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    return _dhash_of(grey, 8), np.asarray(thumb, dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distances between uint64 hashes (broadcast)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)


def image_hashes(paths: Sequence[str | os.PathLike], *,
                 cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """:func:`dhash` (64 bits) of every file, as ``uint64``, in order; cached per file
    (:func:`image_signatures`)."""
    return image_signatures(paths, cache_dir=cache_dir)[0]


def image_signatures(paths: Sequence[str | os.PathLike], *,
                     cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`image_signature` of every file, in order; cached per file.

    The files are decoded on one thread per core. The cache (``cache_dir/dhash_v4.csv``) is
    keyed by path, size and modification time: a changed file is read again.

    Returns:
        ``(hashes, thumbnails)``: ``(N,)`` ``uint64`` and ``(N, THUMB_SIDE ** 2)`` ``uint8``.
    """
    paths = [os.fspath(p) for p in paths]
    cache_file = Path(cache_dir) / HASH_CACHE_NAME if cache_dir is not None else None
    cached: dict[str, tuple[int, int, int, bytes]] = {}
    if cache_file is not None and cache_file.is_file():
        table = pd.read_csv(cache_file, dtype={"path": str, "hash": str, "thumb": str})
        cached = {p: (int(s), int(m), int(h, 16), bytes.fromhex(t)) for p, s, m, h, t in
                  table[["path", "size", "mtime_ns", "hash", "thumb"]].itertuples(index=False)}
    hashes = np.empty(len(paths), dtype=np.uint64)
    thumbs = np.empty((len(paths), THUMB_SIDE ** 2), dtype=np.uint8)
    stats = {path: os.stat(path) for path in dict.fromkeys(paths)}
    todo = [path for path, st in stats.items()
            if cached.get(path, (None, None))[:2] != (st.st_size, st.st_mtime_ns)]
    if todo:  # decoding releases the GIL: one thread per core
        workers = max(1, min(len(todo), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            signatures = pool.map(image_signature, todo)  # one decode for hash and thumbnail
            for path, (value, thumb) in zip(todo, track(signatures, total=len(todo),
                                                        desc="near-duplicate hashes",
                                                        unit="img", bar=False)):
                st = stats[path]
                cached[path] = (st.st_size, st.st_mtime_ns, value, thumb.tobytes())
    changed = bool(todo)
    for i, path in enumerate(paths):
        hit = cached[path]
        hashes[i], thumbs[i] = hit[2], np.frombuffer(hit[3], dtype=np.uint8)
    if cache_file is not None and changed:
        rows = [(p, s, m, f"{h:016x}", t.hex()) for p, (s, m, h, t) in cached.items()]
        write_csv_atomic(pd.DataFrame(rows, columns=["path", "size", "mtime_ns", "hash", "thumb"]),
                         cache_file)
    return hashes, thumbs


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def near_duplicate_groups(hashes: Sequence[int] | np.ndarray, *, max_distance: int = 4,
                          max_bucket: int = 2000, thumbnails: np.ndarray | None = None,
                          max_difference: float = MAX_DIFFERENCE) -> np.ndarray:
    """A group number per item: items whose hashes differ in at most ``max_distance`` bits
    (and, given ``thumbnails``, whose thumbnails differ by at most ``max_difference`` grey
    levels on average), directly or through a chain, share one (the smallest member's position).

    Args:
        hashes: 64-bit hashes (:func:`image_hashes`).
        max_distance: the largest Hamming distance of a near-duplicate pair (0: identical).
        max_bucket: a block value shared by more distinct hashes than this (a blank
            background, say) is not used to find candidates; the other blocks still are.
        thumbnails: ``(N, P)`` grey thumbnails (:func:`image_signatures`) that must confirm a
            candidate pair; ``None`` trusts the hashes alone.
        max_difference: the largest mean absolute thumbnail difference of a confirmed pair.

    Returns:
        ``(N,)`` int array; ``groups[i] == i`` for an item that is the first of its group.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    max_distance = positive_int("max_distance", max_distance, minimum=0)
    if max_distance > 15:
        raise ValueError(f"max_distance must be at most 15 (64-bit hashes). "
                         f"Received: max_distance={max_distance!r}")
    thumbs = None
    if thumbnails is not None:
        thumbs = np.asarray(thumbnails, dtype=np.int16).reshape(len(h), -1)
        if not 0 <= float(max_difference) <= 255:
            raise ValueError(f"max_difference must be in [0, 255] grey levels. "
                             f"Received: max_difference={max_difference!r}")
    uf = _UnionFind(len(h))
    unique, inverse = np.unique(h, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)  # items per hash

    def link(a: np.ndarray, b: np.ndarray | None = None) -> None:
        """Join confirmed pairs: within ``a`` (one hash), or across ``a`` and ``b``."""
        other = a if b is None else b
        for lo in range(0, len(a), 64):  # bounded memory: 64 rows of thumbnails at a time
            rows = a[lo:lo + 64]
            ok = np.ones((len(rows), len(other)), dtype=bool)
            if thumbs is not None:
                diff = np.abs(thumbs[rows][:, None, :] - thumbs[other][None, :, :]).mean(axis=-1)
                ok = diff <= max_difference
            if b is None:  # each pair once
                ok &= np.arange(lo, lo + len(rows))[:, None] < np.arange(len(a))[None, :]
            for x, y in zip(*np.nonzero(ok)):
                uf.union(int(rows[x]), int(other[y]))

    for group in members:
        if len(group) > 1:
            link(group)
    if max_distance and len(unique) > 1:
        blocks = max_distance + 1
        bounds = np.linspace(0, 64, blocks + 1).astype(int)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            key = (unique >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
            key_order = np.argsort(key, kind="stable")
            starts = np.flatnonzero(np.r_[True, key[key_order][1:] != key[key_order][:-1]])
            for s, e in zip(starts, np.r_[starts[1:], len(key_order)]):
                bucket = key_order[s:e]
                if len(bucket) < 2 or len(bucket) > max_bucket:
                    continue
                d = hamming(unique[bucket][:, None], unique[bucket][None, :])
                for x, y in zip(*np.nonzero(np.triu(d <= max_distance, k=1))):
                    link(members[bucket[x]], members[bucket[y]])
    return np.array([uf.find(i) for i in range(len(h))])


def group_summary(groups: np.ndarray) -> dict[str, int]:
    """How many items sit in groups of two or more, in how many groups, the largest group."""
    sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
    multi = sizes[sizes > 1]
    return {"items": int(len(groups)), "groups_of_two_or_more": int(len(multi)),
            "items_in_such_groups": int(multi.sum()), "largest_group": int(sizes.max(initial=0))}


def collapse_neighbours(neighbours: np.ndarray, query_positions: Sequence[int],
                        groups: np.ndarray, *, k: int) -> np.ndarray:
    """Keep, per row, the first neighbour of each near-duplicate group, skipping the query's own
    group, up to ``k``; ``-1`` fills a row that runs short.

    Args:
        neighbours: ``(Q, K)`` ranked row positions (``-1`` = none), K > k leaves room.
        query_positions: each row's query position (its group is skipped).
        groups: :func:`near_duplicate_groups` of every position.
        k: results kept per row.
    """
    k = positive_int("k", k)
    neighbours = np.asarray(neighbours)
    out = np.full((len(neighbours), k), -1, dtype=np.int64)
    for r, (row, q) in enumerate(zip(neighbours, query_positions)):
        seen = {int(groups[q])}
        kept = 0
        for p in row:
            if p < 0 or kept == k:
                break
            g = int(groups[p])
            if g not in seen:
                seen.add(g)
                out[r, kept] = p
                kept += 1
    return out
