"""Parse speed: the loading stage alone (file → Document), no chunking or embedding.

    python benchmarks/parse_speed.py [--data FOLDER] [--repeat N] [--json]

Default documents: ../shared/data/docs_en, docs_ko and docs_hwp. PDFs are reported in pages/s
(PDF pages), every format in files/s. One-time costs are paid before timing and shown apart:
imports (unstructured + spaCy for the formats of the polisum[unstructured] extra) and loading
Kiwi, which the Korean PDF line-join repair uses (the chunker loads it anyway). Each file is
parsed ``--repeat`` times; the best run counts, as for timeit.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

from polisum.loaders import default_registry

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUBDIRS = ("docs_en", "docs_ko", "docs_hwp")


def warm_up(registry, files: list[Path]) -> dict[str, float]:
    """Parse one file of each format once: imports and model loads happen here."""
    costs: dict[str, float] = {}
    seen: set[str] = set()
    for path in files:
        ext = path.suffix.lower()
        if ext in seen:
            continue
        seen.add(ext)
        t = time.perf_counter()
        registry.load(path)
        costs[ext] = time.perf_counter() - t
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    files = sorted(p for sub in SUBDIRS for p in (args.data / sub).glob("*") if p.is_file())
    if not files:
        raise SystemExit(f"no documents under {args.data}/{{{','.join(SUBDIRS)}}}")
    registry = default_registry()
    first_use = warm_up(registry, files)

    rows = []
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])  # files, pages, seconds
    for path in files:
        best = float("inf")
        for _ in range(max(1, args.repeat)):
            t = time.perf_counter()
            doc = registry.load(path)
            best = min(best, time.perf_counter() - t)
        pages = doc.metadata.get("pages") if path.suffix.lower() == ".pdf" else None
        rows.append(
            {
                "file": f"{path.parent.name}/{path.name}",
                "format": path.suffix.lower().lstrip("."),
                "pages": pages,
                "chars": len(doc.text),
                "elements": len(doc.elements),
                "seconds": round(best, 4),
            }
        )
        agg = totals[path.suffix.lower().lstrip(".")]
        agg[0] += 1
        agg[1] += pages or 0
        agg[2] += best

    summary = {
        fmt: {
            "files": int(n),
            "files_per_s": round(n / s, 1) if s else None,
            "pages": int(pages) or None,
            "pages_per_s": round(pages / s, 1) if pages and s else None,
        }
        for fmt, (n, pages, s) in sorted(totals.items())
    }
    if args.json:
        print(json.dumps({"files": rows, "formats": summary, "first_use_s": first_use}, indent=2))
        return
    print(f"{'file':58} {'pages':>5} {'chars':>7} {'elems':>5} {'sec':>7} {'pages/s':>8}")
    for r in rows:
        rate = f"{r['pages'] / r['seconds']:.1f}" if r["pages"] and r["seconds"] else ""
        print(
            f"{r['file'][:58]:58} {r['pages'] or '':>5} {r['chars']:>7} {r['elements']:>5} "
            f"{r['seconds']:>7.3f} {rate:>8}"
        )
    print()
    print(f"{'format':8} {'files':>5} {'files/s':>8} {'pages':>6} {'pages/s':>8}")
    for fmt, s in summary.items():
        print(
            f"{fmt:8} {s['files']:>5} {s['files_per_s'] or '':>8} {s['pages'] or '':>6} "
            f"{s['pages_per_s'] or '':>8}"
        )
    print()
    print(
        "first use (imports, models; not in the rates above): "
        + ", ".join(f"{ext} {sec:.2f}s" for ext, sec in first_use.items())
    )


if __name__ == "__main__":
    main()
