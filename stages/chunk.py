"""Stage `chunk`: data/interim/documents.parquet -> data/interim/passages.parquet (+ chunk_report.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kosparse.chunk import chunk_documents
from kosparse.config import ChunkConfig, TeacherConfig, load_section, read_params

OUT = Path("data/interim")


def main() -> int:
    """Run chunk with the `chunk` and `teacher` sections of params.yaml."""
    params = read_params()
    cfg = load_section(ChunkConfig, "chunk", params)
    teacher = load_section(TeacherConfig, "teacher", params)
    # budget None: measured from the teacher's tokenizer while the workers start
    stats = chunk_documents(OUT / "documents.parquet", OUT / "passages.parquet", OUT / "chunk_report.json",
                            teacher.model_name_or_path, cfg.max_tokens, cfg.overlap_sentences,
                            cfg.min_tokens, cfg.splitter, cfg.workers, cfg.batch_docs,
                            word_cache=cfg.word_cache, unigram_counts=cfg.unigram_counts,
                            max_length=teacher.max_length, passage_prefix=teacher.passage_prefix)
    budget = json.loads((OUT / "chunk_report.json").read_text(encoding="utf-8"))["budget"]
    print(f"chunk: {stats.documents:,} documents -> {stats.passages:,} passages (budget {budget} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
