"""Stage `embed`: passages.parquet + queries.parquet -> teacher embeddings (+ id files, embed_report.json)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from kosparse.config import TeacherConfig, load_section, read_params
from kosparse.embed import EmbedConfig, Encoder, embed_parquet

INTERIM = Path("data/interim")
SHARDS = INTERIM / "embed_shards"  # scratch for resuming; not a DVC out (see README)
OUT = Path("data/neural_sparse_training/embeddings")


def main() -> int:
    """Run embed with the `embed` and `teacher` sections of params.yaml."""
    params = read_params()
    teacher = load_section(TeacherConfig, "teacher", params)
    cfg = load_section(EmbedConfig, "embed", params)
    cfg = dataclasses.replace(cfg, max_length=cfg.max_length or teacher.max_length)
    encoder = Encoder(teacher.model_name_or_path, cfg)
    docs = embed_parquet(encoder, INTERIM / "passages.parquet", OUT / "document_embeddings.npy",
                         OUT / "document_ids.txt", SHARDS / "documents", "passage", teacher.passage_prefix,
                         cfg, id_column="passage_id")
    queries = embed_parquet(encoder, INTERIM / "queries.parquet", OUT / "query_embeddings.npy",
                            OUT / "query_ids.txt", SHARDS / "queries", "query", teacher.query_prefix, cfg,
                            id_column="query_id")
    report = {"model": teacher.model_name_or_path, "backend": encoder.backend, "device": encoder.device,
              "query_prefix": teacher.query_prefix, "passage_prefix": teacher.passage_prefix,
              "dtype": cfg.dtype, "max_length": encoder.max_length, "dim": encoder.dim,
              "documents": docs.to_dict(), "queries": queries.to_dict()}
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    (OUT / "embed_report.json").write_text(text, encoding="utf-8")
    reused = len(docs.skipped) + len(queries.skipped)
    print(f"embed: {docs.rows:,} passages + {queries.rows:,} queries -> {encoder.dim}-d {cfg.dtype} "
          f"({encoder.backend} on {encoder.device}; {reused} shards reused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
