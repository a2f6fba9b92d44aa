"""Stage `synonyms`: term sources -> data/synonyms/ko_en_terms.jsonl, review_sample.tsv, metadata.json."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kosparse.config import TeacherConfig, load_section, read_params
from kosparse.lexicon.readers import Tally
from kosparse.lexicon.terms import SynonymsConfig, build_terms, raw_pairs, teacher_scorer, write_outputs

SOURCES = Path("data/raw/lexicon")
OUT = Path("data/synonyms")


def main() -> int:
    """Build the term pairs with the `synonyms` and `teacher` sections of params.yaml."""
    params = read_params()
    cfg = load_section(SynonymsConfig, "synonyms", params)
    teacher = load_section(TeacherConfig, "teacher", params)
    t0 = time.perf_counter()
    tally = Tally()
    raw = list(raw_pairs(cfg, SOURCES, Path("data/interim/documents.parquet"), tally))
    tally.check(cfg.max_malformed_rate)
    score = (teacher_scorer(teacher.model_name_or_path, teacher.query_prefix, cfg.batch_size, cfg.teacher_knn)
             if cfg.teacher_check else None)
    terms, stats = build_terms(raw, cfg, score)
    write_outputs(terms, stats, tally, cfg, OUT, {"teacher": teacher.model_name_or_path,
                                                 "seconds": round(time.perf_counter() - t0, 1)})
    print(f"synonyms: {len(raw):,} raw pairs -> {stats['pairs']:,} terms ({stats['it_pairs']:,} IT/ML, "
          f"{stats['general_pairs']:,} general) by category {stats['by_category']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
