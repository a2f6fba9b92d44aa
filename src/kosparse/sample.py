"""Build the offline default corpus ("sample") from Debian help packages.

The sample corpus is made of Korean help pages shipped by Debian (GNOME user
docs, LibreOffice help, the Debian FAQ), each paired with its English original
through a shared ``id``. Packages are fetched with ``apt-get download`` (no
install, no root needed for the download itself); only the help pages are
unpacked (``dpkg-deb --fsys-tarfile | tar -x``).

Output layout::

    out_dir/ko/<corpus>.jsonl   {"id", "url", "title", "text", "language": "ko"}
    out_dir/en/<corpus>.jsonl   same ids, "language": "en"
    out_dir/manifest.json       package versions, sha256, per-corpus counts

The page parsers (:func:`parse_mallard_page`, :func:`parse_libreoffice_page`,
:func:`parse_docbook_chapter`) are pure functions and need no apt.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from kosparse.registry import DebianPackage, RegistryError, extract_deb, fetch_deb, sha256

ALTERNATIVES = "use data=wiki_namu with your own files (data/raw/user/), or data=kowiki_shared"
HANGUL_RE = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_WS_RE = re.compile(r"\s+")
_GARBLED_RE = re.compile("[\x80-\x9f\ufffd]")


class SampleSourceError(RuntimeError):
    """The sample corpus cannot be built (apt missing, version gone, too few docs).

    Attributes:
        reason: Machine-readable cause: ``apt_missing``, ``version_unavailable``,
            ``download_failed``, ``bad_package`` or ``too_few_docs``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(f"{message}; {ALTERNATIVES}")
        self.reason = reason


# role -> (corpus name, language side(s) supplied)
ROLES: dict[str, tuple[str, str]] = {
    "gnome-mallard": ("gnome-user-docs", "ko+en"),
    "libreoffice-ko": ("libreoffice-help", "ko"),
    "libreoffice-en": ("libreoffice-help", "en"),
    "debian-faq-ko": ("debian-faq", "ko"),
    "debian-faq-en": ("debian-faq", "en"),
}

# role -> the only archive members that are unpacked (GNU tar wildcards; ``*`` matches ``/``)
ROLE_MEMBERS: dict[str, tuple[str, ...]] = {
    "gnome-mallard": ("./usr/share/help/ko/*.page", "./usr/share/help/C/*.page"),
    "libreoffice-ko": ("./usr/share/libreoffice/help/ko/text/*.html",),
    "libreoffice-en": ("./usr/share/libreoffice/help/en-US/text/*.html",),
    "debian-faq-ko": ("./usr/share/doc/debian/FAQ/ko/*.html",),
    "debian-faq-en": ("./usr/share/doc/debian/FAQ/*.en.html",),
}

DEFAULT_PACKAGES: tuple[DebianPackage, ...] = (
    DebianPackage("gnome-user-docs", "43.0-2", "gnome-mallard"),
    DebianPackage("libreoffice-help-ko", "4:7.4.7-1+deb12u14", "libreoffice-ko"),
    DebianPackage("libreoffice-help-en-us", "4:7.4.7-1+deb12u14", "libreoffice-en"),
    DebianPackage("debian-faq-ko", "11.1", "debian-faq-ko"),
    DebianPackage("debian-faq", "11.1", "debian-faq-en"),
)


@dataclass(frozen=True)
class ParsedPage:
    """Clean text of one help page: a title and ``\\n``-separated paragraphs."""

    title: str
    body: str


@dataclass(frozen=True)
class SampleReport:
    """Summary of one :func:`build_sample` run (the manifest plus timing)."""

    out_dir: Path
    manifest: dict[str, object]
    docs_ko: int
    docs_en: int
    chars_ko: int
    wall_s: float
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------


def bilingual_pages(folder: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each Korean page of a built sample with its English original, or ``None`` where there is none.

    Args:
        folder: The sample folder (``ko/*.jsonl`` and ``en/*.jsonl``, rows joined by ``id``).

    Yields:
        ``(korean row, english row or None)``, files and lines in sorted order.
    """
    english: dict[str, dict[str, Any]] = {}
    for path in sorted((folder / "en").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            english[row["id"]] = row
    for path in sorted((folder / "ko").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            yield row, english.get(row["id"])


def hangul_share(text: str) -> float:
    """Return the share of non-space characters that sit in Hangul-bearing lines.

    Args:
        text: Body text with one paragraph per line.

    Returns:
        A value in ``[0, 1]``; 0 for text without any Hangul.
    """
    total = korean = 0
    for line in text.split("\n"):
        n = len(line) - line.count(" ")
        total += n
        if HANGUL_RE.search(line):
            korean += n
    return korean / total if total else 0.0


class _Sink:
    """Collects text into paragraphs; ``brk`` ends the current paragraph."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.cur: list[str] = []
        self.pre = 0

    def text(self, s: str) -> None:
        if self.pre:
            lines = s.split("\n")
            for i, line in enumerate(lines):
                if i:
                    self.brk()
                self.cur.append(line)
        else:
            self.cur.append(s)

    def brk(self) -> None:
        line = _WS_RE.sub(" ", "".join(self.cur)).strip()
        if line:
            self.blocks.append(line)
        self.cur = []

    def result(self) -> str:
        self.brk()
        return unicodedata.normalize("NFC", "\n".join(self.blocks))


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


def _clean(s: str) -> str:
    return unicodedata.normalize("NFC", _WS_RE.sub(" ", s).strip())


# --------------------------------------------------------------------------
# Mallard (.page, GNOME)
# --------------------------------------------------------------------------

_MAL = "{http://projectmallard.org/1.0/}"
_IF = "{http://projectmallard.org/if/1.0/}"
_MAL_TRUE = frozenset({"platform:gnome", "target:html"})
_MAL_SKIP = frozenset({"info", "comment", "media", "links"})
_MAL_BLOCK = _words(
    "p title subtitle item td th tr code screen synopsis quote list steps terms tree table note "
    "section figure listing example desc cite div"
)
_MAL_PRE = frozenset({"screen", "code"})


def _mallard_test(test: str | None) -> bool:
    """Evaluate a Mallard ``if:test`` (comma = or, space = and) for GNOME/HTML."""
    if test is None:
        return True
    for cond in test.split(","):
        if all(
            (tok[1:] not in _MAL_TRUE) if tok.startswith("!") else (tok in _MAL_TRUE) for tok in cond.split()
        ):
            return True
    return False


def _mal_local(el: ET.Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag.startswith(_MAL):
        return tag[len(_MAL) :]
    if tag.startswith(_IF):
        return "if:" + tag[len(_IF) :]
    return "ext:" + tag  # foreign namespaces (xi:include, its, ui, tt)


def _render_mallard(el: ET.Element, sink: _Sink, titles: Mapping[str, str]) -> None:
    """Render one element (not its tail) into ``sink``."""
    name = _mal_local(el)
    if name in _MAL_SKIP or name.startswith("ext:") or not _mallard_test(el.get(_IF + "test")):
        return
    if name == "if:choose":
        branch = next((c for c in el if _mal_local(c) == "if:when" and _mallard_test(c.get("test"))), None)
        branch = branch if branch is not None else next((c for c in el if _mal_local(c) == "if:else"), None)
        if branch is not None:
            _render_mallard_children(branch, sink, titles)
        return
    if name == "if:if" and not _mallard_test(el.get("test")):
        return
    if name in ("keyseq", "guiseq"):
        parts = []
        for child in el:
            sub = _Sink()
            _render_mallard(child, sub, titles)
            parts.append(sub.result())
        sink.text(("+" if name == "keyseq" else " ▸ ").join(p for p in parts if p))
        return
    block = name in _MAL_BLOCK and not (name == "code" and _is_inline_code(el))
    if block:
        sink.brk()
    if name == "link" and len(el) == 0 and not (el.text or "").strip():
        target = el.get("xref") or ""
        sink.text(titles.get(target.split("#")[0], "") if target else el.get("href", ""))
    else:
        pre = name in _MAL_PRE and block
        sink.pre += pre
        _render_mallard_children(el, sink, titles)
        sink.pre -= pre
    if block:
        sink.brk()


def _is_inline_code(el: ET.Element) -> bool:
    """Mallard ``code`` is inline unless it holds several lines."""
    return "\n" not in "".join(el.itertext()).strip()


def _render_mallard_children(el: ET.Element, sink: _Sink, titles: Mapping[str, str]) -> None:
    sink.text(el.text or "")
    for child in el:
        _render_mallard(child, sink, titles)
        sink.text(child.tail or "")


def mallard_page_title(data: bytes) -> tuple[str, str]:
    """Return ``(page id, plain title)`` of a Mallard page, for link resolution."""
    root = ET.fromstring(data)
    title = root.find(_MAL + "title")
    return root.get("id", ""), _clean("".join(title.itertext())) if title is not None else ""


def parse_mallard_page(data: bytes, link_titles: Mapping[str, str] | None = None) -> ParsedPage:
    """Extract title and body from a Mallard ``.page`` file (GNOME help).

    ``<info>`` (credits, revisions, descriptions), media, comments and topic
    link lists are dropped; conditionals are resolved for a plain GNOME
    desktop; ``keyseq`` renders as ``Ctrl+C`` and ``guiseq`` as ``A ▸ B``.

    Args:
        data: Raw XML bytes of the page.
        link_titles: Page id -> title, used for empty ``<link xref=.../>``.

    Returns:
        The parsed page; empty strings when a part is missing.
    """
    root = ET.fromstring(data)
    titles = link_titles or {}
    sink, title = _Sink(), ""
    sink.text(root.text or "")
    for child in root:
        if _mal_local(child) == "title" and not title:
            sub = _Sink()
            _render_mallard_children(child, sub, titles)
            title = sub.result().replace("\n", " ")
        else:
            _render_mallard(child, sink, titles)
        sink.text(child.tail or "")
    return ParsedPage(title, sink.result())


# --------------------------------------------------------------------------
# Minimal HTML tree (stdlib html.parser)
# --------------------------------------------------------------------------

_VOID = _words("area base br col embed hr img input link meta param source track wbr")
_HTML_BLOCK = _words("p div h1 h2 h3 h4 h5 h6 li ol ul table tr td th pre br hr dl dt dd blockquote section")


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str]
    children: list[_Node | str] = field(default_factory=list)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[_Node]:
        yield self
        for c in self.children:
            if isinstance(c, _Node):
                yield from c.iter()

    def find(self, pred: Callable[[_Node], bool]) -> _Node | None:
        return next((n for n in self.iter() if pred(n)), None)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(_Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def _html_tree(html: str) -> _Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def _render_html(node: _Node, sink: _Sink, skip: Callable[[_Node], bool]) -> None:
    if skip(node):
        return
    block = node.tag in _HTML_BLOCK
    if block:
        sink.brk()
    sink.pre += node.tag == "pre"
    for child in node.children:
        if isinstance(child, str):
            sink.text(child)
        else:
            _render_html(child, sink, skip)
    sink.pre -= node.tag == "pre"
    if block:
        sink.brk()


def _html_text(node: _Node | None, skip: Callable[[_Node], bool] = lambda n: False) -> str:
    if node is None:
        return ""
    sink = _Sink()
    _render_html(node, sink, skip)
    return sink.result()


_HTML_SKIP_TAGS = _words("script style head meta img noscript footer header nav aside button input label")

# --------------------------------------------------------------------------
# LibreOffice help (.html generated from .xhp)
# --------------------------------------------------------------------------

LIBREOFFICE_MODULES = {
    "swriter": "WRITER",
    "scalc": "CALC",
    "simpress": "IMPRESS",
    "sdraw": "DRAW",
    "schart": "CHART",
    "smath": "MATH",
    "sbasic": "BASIC",
    "sdatabase": "DATABASE",
}
_LO_SYSTEMS = frozenset({"MAC", "WIN", "UNIX"})


def _lo_case(node: _Node) -> str:
    cls = node.attrs.get("class", "")
    return "default" if node.attrs.get("id", "").startswith("default") else cls


def parse_libreoffice_page(html: str, module: str | None = None) -> ParsedPage:
    """Extract title and body from a LibreOffice help page (``help/<lang>/text/...html``).

    Only ``#DisplayArea`` is read; note icons, keyword metas, debug footer and
    the trailing "related topics" links are dropped. Platform/module switches
    show one case: UNIX, else the page's module, else ``default``, else (for
    module switches only) the first case.

    Args:
        html: Page source (UTF-8 decoded).
        module: Module switch name of the page (``WRITER``, ``CALC`` ...), if any.

    Returns:
        The parsed page; the title is the first ``<h1>`` (else ``<title>``).
    """
    root = _html_tree(html)
    area = root.find(lambda n: n.attrs.get("id") == "DisplayArea")
    head_title = root.find(lambda n: n.tag == "title")
    if area is None:
        return ParsedPage(_html_text(head_title), "")
    h1 = area.find(lambda n: n.tag == "h1")
    title = _html_text(h1 if h1 is not None else head_title).replace("\n", " ")
    chosen: set[int] = set()
    for sw in area.iter():
        if not sw.classes() & {"switch", "switchinline"}:
            continue
        cases = [c for c in sw.children if isinstance(c, _Node) and "hidden" in c.attrs]
        names = [_lo_case(c) for c in cases]
        pick = next((names.index(w) for w in ("UNIX", module, "default") if w in names), None)
        if pick is None and cases and names[0] not in _LO_SYSTEMS:
            pick = 0
        if pick is not None:
            chosen.add(id(cases[pick]))
    state = {"stop": False}

    def skip(n: _Node) -> bool:
        cls = n.classes()
        if "related" in cls and n.tag == "p":
            state["stop"] = True
        return (
            state["stop"]
            or n is h1
            or n.tag in _HTML_SKIP_TAGS
            or ("hidden" in n.attrs and id(n) not in chosen)
            or bool(cls & {"noteicon", "relatedtopics", "debug"})
        )

    return ParsedPage(title, _html_text(area, skip))


# --------------------------------------------------------------------------
# Debian FAQ (DocBook XSL chunked XHTML)
# --------------------------------------------------------------------------

_NUMBER_RE = re.compile(
    r"^(?:(?:Chapter|Appendix) [\dA-Z]+\.|\d+장\.|부록 [A-Z]\.|(?:\d+|[A-Z])(?:\.\d+)*\.)\s+"
)
_DOCBOOK_SKIP = frozenset({"toc", "navheader", "navfooter", "footnote", "footnotes", "titlepage"})


def parse_docbook_chapter(html: str) -> list[tuple[str, ParsedPage]]:
    """Split one Debian FAQ chapter page into sections.

    Each top-level ``div.section`` becomes ``(anchor, ParsedPage)`` with the
    section number stripped from its title; text before the first section
    becomes an entry under the chapter anchor. TOC, navigation and footnotes
    are dropped; nested sub-section titles stay as body lines.

    Args:
        html: Chapter page source (UTF-8 decoded).

    Returns:
        Sections in document order; empty when the page has no chapter.
    """
    root = _html_tree(html)
    chapter = root.find(lambda n: bool(n.classes() & {"chapter", "appendix"}))
    if chapter is None:
        return []

    def heading(div: _Node, tag: str) -> tuple[str, str]:
        h = div.find(lambda n: n.tag == tag)
        if h is None:
            return "", ""
        anchor = h.find(lambda n: n.tag == "a" and "id" in n.attrs)
        text = _NUMBER_RE.sub("", _html_text(h).replace("\n", " "))
        return (anchor.attrs["id"] if anchor is not None else ""), text

    def skip_top(n: _Node) -> bool:
        return n.tag in _HTML_SKIP_TAGS or n.tag == "sup" or bool(n.classes() & _DOCBOOK_SKIP)

    def skip_inner(n: _Node) -> bool:  # nested titlepages keep their heading text
        return (
            n.tag in _HTML_SKIP_TAGS or n.tag == "sup" or bool(n.classes() & (_DOCBOOK_SKIP - {"titlepage"}))
        )

    out: list[tuple[str, ParsedPage]] = []
    anchor, title = heading(chapter, "h1")
    intro = _Sink()
    for child in chapter.children:
        if isinstance(child, str):
            intro.text(child)
        elif "section" in child.classes():
            sec_anchor, sec_title = heading(child, "h2")
            sink = _Sink()
            for sub in child.children:
                if isinstance(sub, str):
                    sink.text(sub)
                elif "titlepage" not in sub.classes():
                    _render_html(sub, sink, skip_inner)
            out.append((sec_anchor, ParsedPage(sec_title, sink.result())))
        else:
            _render_html(child, intro, skip_top)
    return [(anchor, ParsedPage(title, intro.result())), *out]


# --------------------------------------------------------------------------
# apt / dpkg
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Corpus readers: yield (id, ko url, en url, ko page, lazy en page | None)
# --------------------------------------------------------------------------

Pair = tuple[str, str, str, ParsedPage | None, Callable[[], ParsedPage | None]]


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _mallard_file(path: Path, titles: Mapping[str, str]) -> ParsedPage:
    return parse_mallard_page(path.read_bytes(), titles)


def _libreoffice_file(path: Path, module: str | None) -> ParsedPage:
    return parse_libreoffice_page(_read_text(path), module)


def _maybe(path: Path, parse: Callable[[Path], ParsedPage]) -> ParsedPage | None:
    """Parse ``path`` if it exists (the English side is parsed only for kept Korean pages)."""
    return parse(path) if path.is_file() else None


def _gnome_pairs(roots: Mapping[str, Path]) -> Iterator[Pair]:
    help_dir = roots["ko+en"] / "usr/share/help"
    for doc in sorted(p.name for p in (help_dir / "ko").iterdir() if p.is_dir()):
        area = "users" if doc == "gnome-help" else "admin"
        titles = {
            lang: dict(
                mallard_page_title(p.read_bytes()) for p in sorted((help_dir / lang / doc).glob("*.page"))
            )
            for lang in ("ko", "C")
        }
        for ko_path in sorted((help_dir / "ko" / doc).glob("*.page")):
            en_path = help_dir / "C" / doc / ko_path.name
            ko = _mallard_file(ko_path, titles["ko"])
            en = partial(_maybe, en_path, partial(_mallard_file, titles=titles["C"]))
            url = f"https://help.gnome.org/{area}/{doc}/stable/{ko_path.stem}.html"
            yield f"gnome-user-docs:{doc}/{ko_path.stem}", url + ".ko", url + ".en", ko, en


def _libreoffice_pairs(roots: Mapping[str, Path], version: str) -> Iterator[Pair]:
    ko_dir, en_dir = (
        roots["ko"] / "usr/share/libreoffice/help/ko",
        roots["en"] / "usr/share/libreoffice/help/en-US",
    )
    short = ".".join(version.split(":")[-1].split(".")[:2])
    for ko_path in sorted((ko_dir / "text").rglob("*.html")):
        rel = ko_path.relative_to(ko_dir).as_posix()
        module = LIBREOFFICE_MODULES.get(rel.split("/")[1])
        en_path = en_dir / rel
        ko = _libreoffice_file(ko_path, module)
        en = partial(_maybe, en_path, partial(_libreoffice_file, module=module))
        base = f"https://help.libreoffice.org/{short}"
        yield f"libreoffice-help:{rel[:-5]}.xhp", f"{base}/ko/{rel}", f"{base}/en-US/{rel}", ko, en


def _debian_faq_pairs(roots: Mapping[str, Path]) -> Iterator[Pair]:
    ko_dir, en_dir = roots["ko"] / "usr/share/doc/debian/FAQ/ko", roots["en"] / "usr/share/doc/debian/FAQ"
    for ko_path in sorted(ko_dir.glob("*.ko.html")):
        stem = ko_path.name[: -len(".ko.html")]
        if stem == "index":
            continue
        en_path = en_dir / f"{stem}.en.html"
        en_secs = dict(parse_docbook_chapter(_read_text(en_path))) if en_path.is_file() else {}
        base = "https://www.debian.org/doc/manuals/debian-faq"
        for anchor, ko in parse_docbook_chapter(_read_text(ko_path)):
            frag = "" if anchor == stem else f"#{anchor}"
            yield (
                f"debian-faq:{stem}{frag}",
                f"{base}/{stem}.ko.html{frag}",
                f"{base}/{stem}.en.html{frag}",
                ko,
                partial(en_secs.get, anchor),
            )


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------

DROP_REASONS = ("no_title", "too_short", "garbled", "untranslated", "partly_translated")


@dataclass
class CorpusCounts:
    """Per-corpus counts recorded in the manifest."""

    pages_seen: int = 0
    kept: int = 0
    with_english: int = 0
    chars_ko: int = 0
    chars_en: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))


def _row(doc_id: str, url: str, page: ParsedPage, lang: str) -> tuple[str, str]:
    row = {"id": doc_id, "url": url, "title": page.title, "text": page.body, "language": lang}
    return doc_id, json.dumps(row, ensure_ascii=False) + "\n"


def _collect(pairs: Iterator[Pair], min_chars: int, min_share: float) -> tuple[bytes, bytes, CorpusCounts]:
    """Filter pairs; return ko JSONL bytes, en JSONL bytes (rows sorted by id) and counts."""
    counts, ko_rows, en_rows = CorpusCounts(), [], []
    for doc_id, ko_url, en_url, ko, en_page in pairs:
        counts.pages_seen += 1
        reason = drop_reason(ko, min_chars, min_share)
        if reason or ko is None:
            counts.dropped[reason or "no_title"] += 1
            continue
        ko_rows.append(_row(doc_id, ko_url, ko, "ko"))
        counts.chars_ko += len(ko.body)
        en = en_page()
        if en is not None and en.title and en.body:
            en_rows.append(_row(doc_id, en_url, en, "en"))
            counts.chars_en += len(en.body)
    counts.kept, counts.with_english = len(ko_rows), len(en_rows)
    ids = [i for i, _ in ko_rows]
    if len(set(ids)) != len(ids):
        raise RuntimeError("duplicate sample ids")  # a reader bug, never data-dependent

    def dump(rows: list[tuple[str, str]]) -> bytes:
        return "".join(r for _, r in sorted(rows)).encode("utf-8")

    return dump(ko_rows), dump(en_rows), counts


def build_sample(
    out_dir: Path,
    packages: Sequence[DebianPackage] = DEFAULT_PACKAGES,
    min_docs: int = 1000,
    allow_other_versions: bool = False,
    work_dir: Path | None = None,
    *,
    min_chars: int = 100,
    min_korean_share: float = 0.5,
) -> SampleReport:
    """Download the pinned Debian help packages and write the paired sample corpus.

    Args:
        out_dir: Destination; receives ``ko/``, ``en/`` and ``manifest.json``.
        packages: Packages to read; each role in :data:`ROLES` at most once,
            Korean and English roles of a corpus together.
        min_docs: Minimum number of Korean docs, else :class:`SampleSourceError`.
        allow_other_versions: Use apt's available version when a pin is gone
            (recorded in the manifest, with a warning) instead of failing.
        work_dir: Where .debs are cached and unpacked; a temp dir if ``None``.
        min_chars: Minimum body length (characters) of a kept Korean page.
        min_korean_share: Minimum :func:`hangul_share` of a kept Korean body.

    Returns:
        A :class:`SampleReport` with the manifest content and wall time.

    Raises:
        ValueError: Unknown role, or a corpus given without its other language.
        SampleSourceError: apt missing, pinned version unavailable, download
            failure, or fewer than ``min_docs`` Korean docs.
    """
    start = time.monotonic()
    unknown = [p.role for p in packages if p.role not in ROLES]
    if unknown:
        raise ValueError(f"unknown package roles {unknown}; expected one of {sorted(ROLES)}")
    sides: dict[str, set[str]] = {}
    for p in packages:
        sides.setdefault(ROLES[p.role][0], set()).add(ROLES[p.role][1])
    incomplete = sorted(c for c, s in sides.items() if s != {"ko+en"} and s != {"ko", "en"})
    if incomplete:
        raise ValueError(f"corpora {incomplete} need both their Korean and English package roles")
    notes: list[str] = []
    files: dict[str, bytes] = {}
    corpora: dict[str, CorpusCounts] = {}
    pkg_info: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="kosparse-sample-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        (work / "debs").mkdir(parents=True, exist_ok=True)
        roots: dict[str, dict[str, Path]] = {}
        for pkg in sorted(packages, key=lambda p: p.name):
            dest = work / "extract" / pkg.name
            shutil.rmtree(dest, ignore_errors=True)
            try:
                deb, version = fetch_deb(pkg, work / "debs", allow_other_versions, notes)
                extract_deb(deb, dest, ROLE_MEMBERS[pkg.role])
            except RegistryError as e:
                raise SampleSourceError(str(e), e.reason) from e
            corpus, side = ROLES[pkg.role]
            roots.setdefault(corpus, {})[side] = dest
            pkg_info.append(
                {
                    "name": pkg.name,
                    "role": pkg.role,
                    "pinned_version": pkg.version,
                    "version": version,
                    "deb": deb.name,
                    "sha256": sha256(deb),
                }
            )
        versions = {p["role"]: p["version"] for p in pkg_info}
        for corpus in sorted(roots):
            if corpus == "gnome-user-docs":
                pairs = _gnome_pairs(roots[corpus])
            elif corpus == "libreoffice-help":
                pairs = _libreoffice_pairs(roots[corpus], versions["libreoffice-ko"])
            else:
                pairs = _debian_faq_pairs(roots[corpus])
            ko_bytes, en_bytes, corpora[corpus] = _collect(pairs, min_chars, min_korean_share)
            files[f"ko/{corpus}.jsonl"], files[f"en/{corpus}.jsonl"] = ko_bytes, en_bytes
    counts = list(corpora.values())
    docs_ko, docs_en = sum(c.kept for c in counts), sum(c.with_english for c in counts)
    chars_ko = sum(c.chars_ko for c in counts)
    if docs_ko < min_docs:
        raise SampleSourceError(
            f"only {docs_ko} Korean docs produced from the Debian packages, fewer than min_docs={min_docs}",
            "too_few_docs",
        )
    manifest: dict[str, object] = {
        "source": "debian-packages",
        "packages": pkg_info,
        "filters": {"min_chars": min_chars, "min_korean_share": min_korean_share},
        "corpora": {name: asdict(c) for name, c in corpora.items()},
        "totals": {
            "docs_ko": docs_ko,
            "docs_en": docs_en,
            "chars_ko": chars_ko,
            "chars_en": sum(c.chars_en for c in counts),
        },
        "warnings": notes,
    }
    files["manifest.json"] = (
        json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    ).encode()
    for rel, data in sorted(files.items()):
        path = Path(out_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return SampleReport(
        Path(out_dir), manifest, docs_ko, docs_en, chars_ko, time.monotonic() - start, tuple(notes)
    )


def drop_reason(page: ParsedPage | None, min_chars: int = 100, min_korean_share: float = 0.5) -> str | None:
    """Return why a Korean page is not kept, or ``None`` to keep it.

    Args:
        page: Parsed Korean page (``None`` counts as having no title).
        min_chars: Minimum body length.
        min_korean_share: Minimum :func:`hangul_share` of the body.

    Returns:
        ``no_title``, ``too_short``, ``garbled`` (C1 controls or U+FFFD from a
        broken upstream encoding), ``untranslated`` (no Hangul at all),
        ``partly_translated`` (below ``min_korean_share``) or ``None``.
    """
    if page is None or not page.title:
        return "no_title"
    if len(page.body) < min_chars:
        return "too_short"
    if _GARBLED_RE.search(page.title + page.body):
        return "garbled"
    share = hangul_share(page.body)
    if share == 0.0:
        return "untranslated"
    if share < min_korean_share:
        return "partly_translated"
    return None
