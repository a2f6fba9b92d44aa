"""Stage `mine`: passages + queries + embeddings -> data/interim/mined.parquet (+ mine_report.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.mine import MineConfig, mine

INTERIM = Path("data/interim")
EMBEDDINGS = Path("data/neural_sparse_training/embeddings")


def main() -> int:
    """Run mine with the `mine` section of params.yaml."""
    cfg = load_section(MineConfig, "mine")
    report = mine(INTERIM / "passages.parquet", INTERIM / "queries.parquet", EMBEDDINGS,
                  INTERIM / "mined.parquet", INTERIM / "mine_report.json", cfg)
    drops = ", ".join(f"{k}={v:,}" for k, v in report.dropped.items() if v) or "none"
    print(f"mine: {report.queries:,} queries -> {report.kept:,} rows of {cfg.docs_per_query} docs "
          f"(dropped: {drops}; hard per row {report.hard_per_row}) in {report.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
