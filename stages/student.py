"""Stage `student`: the SPLADE student's starting point -> models/student_init (+ kosparse_student.json)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from kosparse.config import TeacherConfig, load_section, read_params
from kosparse.student import StudentConfig, build_student, vocabulary_texts

OUT = Path("models/student_init")
SOURCES = {"passages": Path("data/interim/passages.parquet"), "terms": Path("data/synonyms/ko_en_terms.jsonl"),
           "parallel": Path("data/synonyms/ko_en_parallel.jsonl")}


def main() -> int:
    """Build the offline student (``student.build=e5_mlm``) or record the hub model (``build=none``)."""
    params = read_params()
    cfg = load_section(StudentConfig, "student", params)
    teacher = load_section(TeacherConfig, "teacher", params)
    if cfg.build == "none":
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        (OUT / "kosparse_student.json").write_text(json.dumps({"model": cfg.model, "built": False}, indent=2) + "\n")
        print(f"student: {cfg.model} is used as is (nothing built)")
        return 0
    if cfg.build != "e5_mlm":
        print(f"student: unknown student.build {cfg.build!r}; use e5_mlm or none", file=sys.stderr)
        return 1
    unknown = set(cfg.vocab_texts) - set(SOURCES)
    if unknown:
        print(f"student: unknown student.vocab_texts {sorted(unknown)}; use {sorted(SOURCES)}", file=sys.stderr)
        return 1
    paths = {k: (SOURCES[k] if k in cfg.vocab_texts else None) for k in SOURCES}
    texts = vocabulary_texts(paths["passages"], paths["terms"], paths["parallel"])
    report = build_student(Path(teacher.model_name_or_path), OUT, cfg, texts)
    print(f"student: {report['layers']} layers, {report['vocab_size']:,} pieces ({report['hangul_pieces']:,} Hangul), "
          f"{report['parameters'] / 1e6:.1f} M parameters -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
