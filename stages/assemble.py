"""Stage `assemble`: mined rows -> data/neural_sparse_training/{train,val}.jsonl, hf/, metadata.json."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.assemble import AssembleConfig, assemble
from kosparse.config import TeacherConfig, load_section, read_params
from kosparse.mine import MineConfig

INTERIM = Path("data/interim")
OUT = Path("data/neural_sparse_training")


def main() -> int:
    """Run assemble with the `assemble`, `mine` and `teacher` sections of params.yaml."""
    params = read_params()
    cfg = load_section(AssembleConfig, "assemble", params)
    mine_cfg = load_section(MineConfig, "mine", params)
    teacher = load_section(TeacherConfig, "teacher", params)
    model = teacher.model if teacher.build == "none" else f"{teacher.name} ({teacher.build})"
    res = assemble(INTERIM / "mined.parquet", INTERIM / "queries.parquet", INTERIM / "passages.parquet",
                   OUT, cfg, embedding_model=model, positive_score=mine_cfg.positive_score,
                   mine_report=INTERIM / "mine_report.json")
    print(f"assemble: {res.train_samples:,} train + {res.val_samples:,} val rows -> {OUT} "
          f"(dropped: {res.dropped or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
