"""``python -m fashion_utils.tools.bench [section ...]`` (``make bench``): run benchmark sections.

Each section's result is merged into ``reports/benchmarks.json`` (or ``--out``); sections
with a table (``extraction``, ``scale``, ``training``, ``explorer``) also refresh it between
their markers on the docs page :data:`~fashion_utils.tools.bench.measure.BENCH_PAGES` names.

Usage::

    python -m fashion_utils.tools.bench                  # every section
    python -m fashion_utils.tools.bench extraction --sizes 32 64
    python -m fashion_utils.tools.bench scale --n 44000 --subset 10000 --no-small
    python -m fashion_utils.tools.bench training --minutes 30 60   # long: not in the default run
    python -m fashion_utils.tools.bench explorer --items 44000     # picks timed in Voila

Run it as this package's ``__main__``: a spawned stage process
(:func:`~fashion_utils.tools.bench.measure.run_isolated`) does not re-import a ``*.__main__``
module, so this module's imports never count in a stage's peak RSS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from fashion_utils.tools.bench.explorer import bench_explorer, explorer_markdown
from fashion_utils.tools.bench.extraction import bench_extraction, extraction_markdown
from fashion_utils.tools.bench.measure import (BENCH_PAGES, benchmarks_path, update_page,
                                               write_results)
from fashion_utils.tools.bench.recommender import bench_recommender
from fashion_utils.tools.bench.scale import FULL_SIZE, SMALL_SIZE, bench_scale, scale_markdown
from fashion_utils.tools.bench.training import DEFAULT_MINUTES, bench_training, training_markdown

#: Section name -> the function that measures it (called with keyword options only).
SECTIONS: dict[str, Callable[..., dict]] = {"extraction": bench_extraction, "scale": bench_scale,
                                            "recommender": bench_recommender,
                                            "training": bench_training,
                                            "explorer": bench_explorer}
#: The sections run when none is named (``training`` takes an hour or more, ``explorer``
#: writes 12 GB of photos: ask for them).
DEFAULT_SECTIONS: tuple[str, ...] = ("extraction", "scale", "recommender")
#: Section name -> its table (written on the page :data:`BENCH_PAGES` names for it).
MARKDOWN: dict[str, Callable[[dict], str]] = {"extraction": extraction_markdown,
                                              "scale": scale_markdown,
                                              "training": training_markdown,
                                              "explorer": explorer_markdown}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fashion_utils.tools.bench",
                                     description="Speed and memory benchmarks")
    parser.add_argument("sections", nargs="*", default=list(DEFAULT_SECTIONS),
                        help=f"any of {list(SECTIONS)} (default: {list(DEFAULT_SECTIONS)})")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the results file (default: {benchmarks_path()})")
    parser.add_argument("--no-docs", action="store_true",
                        help=f"leave the tables on the docs pages alone "
                             f"({', '.join(sorted(set(BENCH_PAGES.values())))})")
    group = parser.add_argument_group("extraction")
    group.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 96, 224],
                       help="image sizes of the per-size comparison")
    group = parser.add_argument_group("scale")
    group.add_argument("--n", type=int, default=44_000, help="products of the catalog")
    group.add_argument("--subset", type=int, default=10_000,
                       help="a smaller catalog first; 0: none")
    group.add_argument("--subset-only", action="store_true",
                       help="measure the subset, extrapolate to n")
    group.add_argument("--no-small", action="store_true", help="skip the 60x80 variant")
    group.add_argument("--queries", type=int, default=300, help="index queries timed")
    group.add_argument("--pool-size", type=int, default=256,
                       help="distinct pictures each catalog is copied from")
    group.add_argument("--full-size", type=int, nargs=2, default=list(FULL_SIZE),
                       metavar=("WIDTH", "HEIGHT"), help="the full-size pictures' size")
    group.add_argument("--random-weights", action="store_true",
                       help="random backbone weights (a quick plumbing check)")
    group.add_argument("--root", type=Path, default=None,
                       help="where the catalogs are made (default: <output root>/data/bench)")
    group = parser.add_argument_group("explorer")
    group.add_argument("--items", type=int, default=44_000, help="products of the timed catalog")
    group.add_argument("--small-photos", action="store_true",
                       help="60x80 photos instead of the full 1800x2400")
    group = parser.add_argument_group("training")
    group.add_argument("--minutes", nargs="+", type=float, default=list(DEFAULT_MINUTES),
                       help="training budgets of the scratch CNN, in minutes")
    group.add_argument("--target", default="articleType",
                       help="the label column (notebook 02 must have run for it)")
    group.add_argument("--data-dir", type=Path, default=None,
                       help="the catalog (default: the prepared Fashion-MNIST)")
    group.add_argument("--retrieval-only", action="store_true",
                       help="no training: add 05's retrieval scores to the saved models of the "
                            "results file's training section")
    return parser


def _section_options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword options of one section from the command line."""
    if name == "extraction":
        return {"sizes": tuple(args.sizes)}
    if name == "scale":
        return {"n": args.n, "subset": args.subset or None, "measure_full": not args.subset_only,
                "small_image_size": None if args.no_small else SMALL_SIZE,
                "n_queries": args.queries, "pool_size": args.pool_size,
                "full_image_size": tuple(args.full_size), "root": args.root,
                "weights": None if args.random_weights else "imagenet"}
    if name == "explorer":
        return {"n": args.items, "full_size": not args.small_photos}
    if name == "training":
        if args.retrieval_only:
            return {"retrieval_only": True, "data_dir": args.data_dir, "out": args.out}
        return {"minutes": tuple(args.minutes), "target": args.target,
                "data_dir": args.data_dir, "out": args.out}
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sections asked for, in order; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    for name in args.sections:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; choose from {list(SECTIONS)}")
    for name in args.sections:
        print(f"==> {name}", flush=True)
        result = SECTIONS[name](**_section_options(name, args))
        out = write_results(name, result, path=args.out)
        if name in MARKDOWN and not args.no_docs:
            try:
                page = update_page(MARKDOWN[name](result), section=name)
                print(f"    table updated in {page}")
            except ValueError as err:
                print(f"  (table not updated: {err})")
        print(f"    written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
