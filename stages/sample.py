"""Stage `sample`: build the offline Korean corpus (with English originals) from pinned Debian packages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kosparse.config import DataConfig, load_section
from kosparse.sample import DebianPackage, SampleSourceError, build_sample

OUT = Path("data/raw/sample")


def main() -> int:
    """Run the sample stage with `data.sample` from params.yaml (a no-op marker for other corpora)."""
    data = load_section(DataConfig, "data")
    OUT.mkdir(parents=True, exist_ok=True)
    if not data.sample.enabled:
        for old in OUT.glob("*/*.jsonl"):
            old.unlink()
        (OUT / "manifest.json").write_text(json.dumps(
            {"enabled": False, "reason": f"data={data.name} reads its own sources"}, indent=2) + "\n")
        print(f"sample: skipped (data={data.name})")
        return 0
    packages = [DebianPackage(p.name, p.version, p.role) for p in data.sample.packages]
    try:
        report = build_sample(OUT, packages, data.sample.min_docs, data.sample.allow_other_versions)
    except SampleSourceError as exc:
        print(f"sample failed: {exc}", file=sys.stderr)
        return 1
    print(f"sample: {report.docs_ko:,} Korean docs ({report.chars_ko:,} chars), {report.docs_en:,} English "
          f"counterparts -> {OUT} in {report.wall_s:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
