"""Stage `queries`: data/interim/passages.parquet -> data/interim/queries.parquet (+ queries_report.json).

LLM answers are cached in data/cache/llm_answers.jsonl, a persistent output: a rerun asks only for
passages (or prompts, or models) it has not seen.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.queries import QueriesConfig, make_queries

OUT = Path("data/interim")
CACHE = Path("data/cache/llm_answers.jsonl")


def main() -> int:
    """Run queries with the `queries` section of params.yaml."""
    cfg = load_section(QueriesConfig, "queries")
    stats = make_queries(OUT / "passages.parquet", OUT / "queries.parquet", OUT / "queries_report.json", cfg,
                         CACHE)
    kept = ", ".join(f"{k} {n:,}" for k, n in stats.to_dict()["kept"].items())
    print(f"queries: {stats.documents:,} documents, {stats.passages:,} passages -> {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
