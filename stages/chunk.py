"""Stage `chunk`: data/interim/documents.parquet -> data/interim/passages.parquet (+ chunk_report.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.chunk import chunk_documents, load_backend_tokenizer, passage_budget
from kosparse.config import ChunkConfig, TeacherConfig, load_section, read_params

OUT = Path("data/interim")


def main() -> int:
    """Run chunk with the `chunk` and `teacher` sections of params.yaml."""
    params = read_params()
    cfg = load_section(ChunkConfig, "chunk", params)
    teacher = load_section(TeacherConfig, "teacher", params)
    # The tokenizer is not kept: the workers load their own, and this process only writes.
    budget = cfg.max_tokens or passage_budget(load_backend_tokenizer(teacher.model_name_or_path),
                                              teacher.max_length, teacher.passage_prefix)
    stats = chunk_documents(OUT / "documents.parquet", OUT / "passages.parquet", OUT / "chunk_report.json",
                            teacher.model_name_or_path, budget, cfg.overlap_sentences, cfg.min_tokens,
                            cfg.splitter, cfg.workers, cfg.batch_docs,
                            word_cache=cfg.word_cache, sentencepiece=cfg.sentencepiece)
    print(f"chunk: {stats.documents:,} documents -> {stats.passages:,} passages (budget {budget} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
