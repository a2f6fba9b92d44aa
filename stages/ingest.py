"""Stage `ingest`: chunk files of every data source -> data/interim/documents.parquet (+ rejects, report)."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.config import DataConfig, IngestConfig, load_section, read_params
from kosparse.ingest import IngestError, ingest

OUT = Path("data/interim")


def main() -> int:
    """Run ingest with the `data` and `ingest` sections of params.yaml."""
    params = read_params()
    data = load_section(DataConfig, "data", params)
    cfg = load_section(IngestConfig, "ingest", params)
    try:
        report = ingest(data.sources, cfg, OUT / "documents.parquet", OUT / "rejects.jsonl",
                        OUT / "ingest_report.json", max_docs=data.max_docs,
                        progress=lambda n: print(f"ingest: {n:,} rows read", file=sys.stderr))
    except IngestError as exc:
        print(f"ingest failed: {exc}", file=sys.stderr)
        return 1
    print(f"ingest: {report.documents_kept:,} documents kept of {report.rows_read:,} rows; "
          f"invalid {report.invalid}; filtered {report.filtered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
