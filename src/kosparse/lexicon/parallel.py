"""The ``parallel`` stage: Korean–English parallel sentences from user corpora and offline sources.

Readers: Tatoeba exports (``english<TAB>korean[<TAB>attribution]``), OPUS Moses pairs (two aligned
files, one sentence per line), TMX (``<tu>`` units with ``xml:lang`` variants, streamed), gettext
sentences (the sentence-like messages of the fetched catalogues) and the sample's help pages (Korean
and English versions of the same page aligned paragraph by paragraph where both have the same
number of paragraphs). Filters: both sides present, Hangul on the Korean side, Latin on the English
side, length limits, character-length ratio; exact duplicates (normalised) are dropped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kosparse.lexicon.readers import Tally, expand_globs, fetched_gettext_messages, nfc, open_text
from kosparse.lexicon.terms import PLACEHOLDER, clean_message
from kosparse.sample import bilingual_pages

HANGUL = re.compile("[\uac00-\ud7a3]")
LATIN = re.compile("[A-Za-z]")
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True)
class SentencePair:
    """One Korean–English sentence pair."""

    ko: str
    en: str
    source: str


@dataclass
class ParallelConfig:
    """The ``parallel`` section.

    Attributes:
        tatoeba: Tatoeba exports (globs), ``english<TAB>korean[<TAB>attribution]``.
        moses: OPUS Moses pairs, each ``{ko: glob-or-path, en: path}``.
        tmx: TMX files (globs; ``.gz`` allowed).
        gettext: Sentence-like messages of the fetched gettext catalogues.
        help_pages: Paragraph-aligned sample help pages (``data/raw/sample/{ko,en}/*.jsonl``).
        help_pages_dir: Folder of the sample corpus.
        min_chars: Shortest side (characters).
        max_chars: Longest side (characters).
        min_words_en: Fewest English words (shorter are terms, not sentences).
        max_length_ratio: Largest ratio of the longer to the shorter side, in characters, after scaling
            the Korean length by ``ko_char_weight``.
        ko_char_weight: Characters of English per Korean character on average (Korean is denser).
        min_hangul_share: Least share of Hangul among the Korean side's letters.
        min_latin_share: Least share of Latin letters among the English side's letters.
        max_malformed_rate: Highest malformed share of a file before the stage fails.
    """

    tatoeba: list[str] = field(default_factory=list)
    moses: list[dict[str, str]] = field(default_factory=list)
    tmx: list[str] = field(default_factory=list)
    gettext: bool = True
    help_pages: bool = True
    help_pages_dir: str = "data/raw/sample"
    min_chars: int = 2
    max_chars: int = 400
    min_words_en: int = 3
    max_length_ratio: float = 3.0
    ko_char_weight: float = 2.5
    min_hangul_share: float = 0.5
    min_latin_share: float = 0.8
    max_malformed_rate: float = 0.01


# --- readers ------------------------------------------------------------------------------------------

def read_tatoeba(path: Path, tally: Tally) -> Iterator[SentencePair]:
    """Tatoeba ``english<TAB>korean[<TAB>attribution]`` lines (a line without both is malformed)."""
    source = "tatoeba"
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            tally.read[source] += 1
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
                tally.bad(source, f"{path.name}:{lineno}")
                continue
            tally.pairs[source] += 1
            yield SentencePair(nfc(parts[1]), nfc(parts[0]), source)


def read_moses(ko_path: Path, en_path: Path, tally: Tally) -> Iterator[SentencePair]:
    """OPUS Moses format: two files with one sentence per line, line ``i`` of each aligned.

    Raises:
        ValueError: When the two files have different line counts (misaligned corpus).
    """
    source = "opus-moses"
    with open_text(ko_path) as ko_fh, open_text(en_path) as en_fh:
        for lineno, (ko, en) in enumerate(zip(ko_fh, en_fh, strict=False), 1):
            tally.read[source] += 1
            if not ko.strip() or not en.strip():
                tally.bad(source, f"{ko_path.name}:{lineno} empty side")
                continue
            tally.pairs[source] += 1
            yield SentencePair(nfc(ko), nfc(en), source)
        if ko_fh.readline() or en_fh.readline():
            raise ValueError(f"{ko_path} and {en_path} have different line counts: not an aligned Moses pair")


def read_tmx(path: Path, tally: Tally) -> Iterator[SentencePair]:
    """Translation units of a TMX file with a Korean and an English variant (streamed with iterparse)."""
    source = "tmx"
    with open_text(path) as fh:
        try:
            for _, el in ET.iterparse(fh, events=("end",)):
                if el.tag != "tu":
                    continue
                tally.read[source] += 1
                segs: dict[str, str] = {}
                for tuv in el.iter("tuv"):
                    lang = (tuv.get(XML_LANG) or tuv.get("lang") or "").lower().split("-")[0].split("_")[0]
                    seg = tuv.find("seg")
                    if seg is not None:
                        segs[lang] = "".join(seg.itertext())
                el.clear()
                if segs.get("ko", "").strip() and segs.get("en", "").strip():
                    tally.pairs[source] += 1
                    yield SentencePair(nfc(segs["ko"]), nfc(segs["en"]), source)
                else:
                    tally.bad(source, f"{path.name}: unit without ko and en")
        except ET.ParseError as e:
            tally.read[source] += 1
            tally.bad(source, f"{path.name}: {e}")


def read_gettext_sentences(sources_dir: Path, tally: Tally) -> Iterator[SentencePair]:
    """Sentence-like gettext messages of the fetched catalogues (placeholders removed first)."""
    for msg in fetched_gettext_messages(sources_dir, tally):
        ko, en = clean_message(msg.ko), clean_message(msg.en)
        if not (PLACEHOLDER.search(ko) or PLACEHOLDER.search(en)):
            yield SentencePair(ko, en, "gettext")


def read_help_pages(folder: Path, tally: Tally) -> Iterator[SentencePair]:
    """Korean and English help pages with the same id, aligned by paragraph when the counts agree."""
    source = "help-pages"
    for ko_row, en_row in bilingual_pages(folder):
        tally.read[source] += 1
        if en_row is None:
            continue
        en = [p for p in en_row["text"].split("\n") if p.strip()]
        ko = [p for p in ko_row["text"].split("\n") if p.strip()]
        if len(en) != len(ko):
            continue  # the paragraph structure differs: no safe alignment
        for k, e in zip(ko, en, strict=True):
            tally.pairs[source] += 1
            yield SentencePair(nfc(k), nfc(e), source)


# --- filters ------------------------------------------------------------------------------------------

def _share(pattern: re.Pattern[str], text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(1 for c in letters if pattern.match(c)) / len(letters) if letters else 0.0


def drop_reason(p: SentencePair, cfg: ParallelConfig) -> str | None:
    """Why a sentence pair is dropped (``None``: keep).

    Reasons: ``length`` (a side outside ``[min_chars, max_chars]``), ``too_few_words`` (English shorter
    than ``min_words_en`` words: a term, not a sentence), ``ko_language`` / ``en_language`` (script
    shares), ``length_ratio`` and ``same_text``.
    """
    if not (cfg.min_chars <= len(p.ko) <= cfg.max_chars and cfg.min_chars <= len(p.en) <= cfg.max_chars):
        return "length"
    if len(p.en.split()) < cfg.min_words_en:
        return "too_few_words"
    if _share(HANGUL, p.ko) < cfg.min_hangul_share:
        return "ko_language"
    if HANGUL.search(p.en) or _share(LATIN, p.en) < cfg.min_latin_share:
        return "en_language"
    ko_len, en_len = len(p.ko) * cfg.ko_char_weight, len(p.en)
    if max(ko_len, en_len) / max(min(ko_len, en_len), 1) > cfg.max_length_ratio:
        return "length_ratio"
    if p.ko == p.en:
        return "same_text"
    return None


def _key(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def build_parallel(pairs: Iterable[SentencePair], cfg: ParallelConfig) -> tuple[list[SentencePair], dict[str, Any]]:
    """Filter and deduplicate sentence pairs; return them with per-source statistics."""
    kept: list[SentencePair] = []
    seen: set[tuple[str, str]] = set()
    read: Counter[str] = Counter()
    dropped: dict[str, Counter[str]] = defaultdict(Counter)
    for p in pairs:
        read[p.source] += 1
        reason = drop_reason(p, cfg)
        key = (_key(p.ko), _key(p.en))
        if reason is None and key in seen:
            reason = "duplicate"
        if reason:
            dropped[p.source][reason] += 1
            continue
        seen.add(key)
        kept.append(p)
    stats = {"pairs": len(kept), "by_source": dict(sorted(Counter(p.source for p in kept).items())),
             "read_by_source": dict(sorted(read.items())),
             "dropped_by_source": {s: dict(sorted(c.items())) for s, c in sorted(dropped.items())}}
    return kept, stats


def parallel_pairs(cfg: ParallelConfig, sources_dir: Path | None, tally: Tally) -> Iterator[SentencePair]:
    """Every sentence pair of the configured sources, in a fixed order."""
    for path in expand_globs(cfg.tatoeba):
        yield from read_tatoeba(path, tally)
    for spec in cfg.moses:
        if set(spec) != {"ko", "en"}:
            raise ValueError(f"parallel.moses entries need exactly the keys ko and en, got {sorted(spec)}")
        yield from read_moses(Path(spec["ko"]), Path(spec["en"]), tally)
    for path in expand_globs(cfg.tmx):
        yield from read_tmx(path, tally)
    if cfg.gettext and sources_dir is not None:
        yield from read_gettext_sentences(sources_dir, tally)
    if cfg.help_pages and (Path(cfg.help_pages_dir) / "ko").is_dir():
        yield from read_help_pages(Path(cfg.help_pages_dir), tally)


def write_parallel(pairs: list[SentencePair], stats: dict[str, Any], tally: Tally, out_dir: Path,
                   cfg: ParallelConfig) -> None:
    """Write ``ko_en_parallel.jsonl`` and ``parallel_metadata.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "ko_en_parallel.jsonl").open("w", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps({"ko": p.ko, "en": p.en, "source": p.source}, ensure_ascii=False) + "\n")
    meta = {**stats, "sources_read": tally.to_dict(), "settings": vars(cfg)}
    (out_dir / "parallel_metadata.json").write_text(
        json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
