"""Stage `parallel`: sentence sources -> data/synonyms/ko_en_parallel.jsonl (+ parallel_metadata.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.lexicon.parallel import ParallelConfig, build_parallel, parallel_pairs, write_parallel
from kosparse.lexicon.readers import Tally

SOURCES = Path("data/raw/lexicon")
OUT = Path("data/synonyms")


def main() -> int:
    """Build the parallel sentences with the `parallel` section of params.yaml."""
    cfg = load_section(ParallelConfig, "parallel")
    tally = Tally()
    pairs, stats = build_parallel(parallel_pairs(cfg, SOURCES, tally), cfg)
    tally.check(cfg.max_malformed_rate)
    write_parallel(pairs, stats, tally, OUT, cfg)
    print(f"parallel: {stats['pairs']:,} sentence pairs by source {stats['by_source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
