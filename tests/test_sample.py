"""Tests for kosparse.sample: page parsers on hand-written fixtures, filters, failure modes.

The ``slow`` tests download the real Debian packages with ``apt-get download``
and are skipped (with the reason) where apt or the mirror is unavailable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kosparse import registry, sample
from kosparse.sample import (
    DEFAULT_PACKAGES,
    DebianPackage,
    ParsedPage,
    SampleSourceError,
    build_sample,
    drop_reason,
    hangul_share,
    parse_docbook_chapter,
    parse_libreoffice_page,
    parse_mallard_page,
)

MALLARD_PAGE = """<?xml version="1.0" encoding="utf-8"?>
<page xmlns="http://projectmallard.org/1.0/" xmlns:if="http://projectmallard.org/if/1.0/"
      xmlns:its="http://www.w3.org/2005/11/its" type="topic" id="keyboard-copy" xml:lang="ko">
  <info>
    <link type="guide" xref="keyboard"/>
    <credit type="author"><name>Someone</name></credit>
    <desc>요약은 페이지에 보이지 않습니다.</desc>
    <include xmlns="http://www.w3.org/2001/XInclude" href="legal.xml"/>
  </info>
  <title>텍스트 <gui>복사</gui>하기</title>
  <p>텍스트를 선택하고
     <keyseq><key>Ctrl</key><key>C</key></keyseq> 키를 누릅니다.</p>
  <media type="image" src="figures/copy.png"><p>그림 대체 텍스트</p></media>
  <p>상단 표시줄의 <media type="image" src="figures/icon.svg">아이콘</media> 단추를 누릅니다.</p>
  <comment><p>번역자 메모</p></comment>
  <steps>
    <item><p><guiseq><gui>편집</gui><gui>복사</gui></guiseq>를 선택합니다.</p></item>
    <item><p>자세한 내용은 <link xref="keyboard-paste#intro"/>를 봅니다.</p></item>
  </steps>
  <p if:test="platform:gnome-classic">클래식 전용 문단</p>
  <if:choose>
    <if:when test="platform:gnome-classic"><p>클래식 분기</p></if:when>
    <if:else><p>기본 분기</p></if:else>
  </if:choose>
  <section id="more">
    <title>더 보기</title>
    <note style="tip"><p>웹 주소는 <link href="https://help.gnome.org/"/>입니다.</p></note>
    <links type="topic"/>
  </section>
</page>
""".encode()

LIBREOFFICE_PAGE = """<!DOCTYPE html>
<html lang="ko" dir="ltr">
<head><meta charset="utf-8"><title>헤드 제목</title>
<script type="text/javascript" src="help.js"></script></head>
<body>
<header id="TopLeftHeader"><a class="logo" href="x.html"><p dir="auto">LibreOffice 7.4 Help</p></a></header>
<aside class="leftside"><div class="index-label">Index</div></aside>
<div id="DisplayArea" itemprop="softwareHelp">
<a name="bm_id1"></a><meta itemprop="keywords" content="키워드">
<h1 id="hd_id1" dir="auto"><a name="x"></a>셀 복사</h1>
<p id="par_id1" class="paragraph" dir="auto">셀을 선택하고 <span class="switchinline"><span hidden="true"
 id="MACtextx_1" class="MAC">Command</span><span hidden="true" id="defaulttextx_1">Ctrl</span></span>+C를
 누릅니다.</p>
<div class="note"><div class="noteicon" dir="auto"><img src="note.svg" alt="참고 아이콘"></div>
<div class="notetext"><p dir="auto">참고 문단입니다.</p></div></div><br>
<span class="switch"><span hidden="true" id="WRITERtextx_2" class="WRITER"><p>문서 전용</p></span><span
 hidden="true" id="CALCtextx_2" class="CALC"><p>시트 전용</p></span></span>
<span hidden="true">숨은 텍스트</span>
<table><tr><td><p class="tablecontentintable">항목</p></td><td><p>설명</p></td></tr></table>
<div class="embedded"><p id="par_id9" class="related" dir="auto"><span class="emph">관련 주제</span></p></div>
<div class="embedded"><p class="embedded"><a href="y.html">다른 페이지</a></p></div>
</div>
<div id="SearchFrame"></div>
<footer><div id="DEBUG" class="debug"><p dir="auto">This page is: /text/x.xhp</p></div></footer>
</body></html>
"""

DOCBOOK_CHAPTER = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>1장. 정의</title></head><body>
<div class="navheader"><table><tr><th>1장. 정의</th></tr></table><hr /></div>
<div class="chapter"><div class="titlepage"><div><div><h1 class="title"><a id="basic-defs"></a>1장. 정의 및
개관</h1></div></div></div>
<div class="toc"><p><strong>차례</strong></p><dl class="toc"><dt>1.1. 이 FAQ는?</dt></dl></div>
<p>장 머리말.</p>
<div class="section"><div class="titlepage"><div><div><h2 class="title"><a id="whatisfaq"></a>1.1. 이 FAQ는
무엇인가요?</h2></div></div></div><p>
이 문서는 자주 묻는
질문을 다룹니다<sup>[<a class="footnote" href="#ftn.1">1</a>]</sup>.
</p><div class="section"><div class="titlepage"><div><div><h3 class="title"><a id="sub"></a>1.1.1.
하위 절</h3></div></div></div><pre class="screen">apt-get
update</pre></div>
<div id="ftn.1" class="footnote"><p>각주 본문</p></div></div>
<div class="section"><div class="titlepage"><div><div><h2 class="title"><a id="gnu"></a>1.2. GNU와의
관계</h2></div></div></div><ul><li><p>첫째</p></li><li><p>둘째</p></li></ul></div>
</div>
<div class="navfooter"><hr /><table><tr><td>다음</td></tr></table></div></body></html>
"""

NETWORK_REASONS = {"apt_missing", "download_failed", "version_unavailable"}


def test_parse_mallard_page() -> None:
    titles = {"keyboard-paste": "붙여넣기"}
    page = parse_mallard_page(MALLARD_PAGE, titles)
    assert page.title == "텍스트 복사하기"
    assert page.body == (
        "텍스트를 선택하고 Ctrl+C 키를 누릅니다.\n"
        "상단 표시줄의 단추를 누릅니다.\n"
        "편집 ▸ 복사를 선택합니다.\n"
        "자세한 내용은 붙여넣기를 봅니다.\n"
        "기본 분기\n"
        "더 보기\n"
        "웹 주소는 https://help.gnome.org/입니다."
    )
    assert sample.mallard_page_title(MALLARD_PAGE) == ("keyboard-copy", "텍스트 복사하기")


def test_parse_mallard_page_unresolved_link_is_empty() -> None:
    page = parse_mallard_page(MALLARD_PAGE)
    assert "자세한 내용은 를 봅니다." in page.body.split("\n")


def test_parse_libreoffice_page() -> None:
    page = parse_libreoffice_page(LIBREOFFICE_PAGE, module="CALC")
    assert page.title == "셀 복사"
    assert page.body == "셀을 선택하고 Ctrl+C를 누릅니다.\n참고 문단입니다.\n시트 전용\n항목\n설명"


def test_parse_libreoffice_page_module_switch_fallback() -> None:
    # text/shared pages have no module: the first case of a module switch is shown
    assert "문서 전용" in parse_libreoffice_page(LIBREOFFICE_PAGE).body.split("\n")


def test_parse_libreoffice_page_without_display_area() -> None:
    assert parse_libreoffice_page(
        "<html><head><title>제목</title></head><body>x</body></html>"
    ) == ParsedPage("제목", "")


def test_parse_docbook_chapter() -> None:
    sections = parse_docbook_chapter(DOCBOOK_CHAPTER)
    assert sections == [
        ("basic-defs", ParsedPage("정의 및 개관", "장 머리말.")),
        (
            "whatisfaq",
            ParsedPage(
                "이 FAQ는 무엇인가요?",
                "이 문서는 자주 묻는 질문을 다룹니다.\n1.1.1. 하위 절\napt-get\nupdate",
            ),
        ),
        ("gnu", ParsedPage("GNU와의 관계", "첫째\n둘째")),
    ]


def test_parse_docbook_english_chapter_title() -> None:
    html = DOCBOOK_CHAPTER.replace("1장. 정의 및\n개관", "Chapter 1. Definitions and overview")
    assert parse_docbook_chapter(html)[0][1].title == "Definitions and overview"


def test_hangul_share() -> None:
    assert hangul_share("") == 0.0
    assert hangul_share("English only") == 0.0
    assert hangul_share("한국어 문단\nabcd") == pytest.approx(5 / 9)


def test_drop_reasons() -> None:
    korean = "가나다라마바사 " * 20
    assert drop_reason(ParsedPage("제목", korean)) is None
    assert drop_reason(None) == "no_title"
    assert drop_reason(ParsedPage("", korean)) == "no_title"
    assert drop_reason(ParsedPage("제목", "짧은 본문")) == "too_short"
    # an untranslated page: English text sitting in the ko folder
    assert drop_reason(ParsedPage("Copy cells", "Select the cells and press Ctrl+C. " * 10)) == "untranslated"
    mixed = "한국어 한 줄\n" + "This paragraph was never translated into Korean. " * 5
    assert drop_reason(ParsedPage("제목", mixed)) == "partly_translated"
    assert drop_reason(ParsedPage("제목", mixed), min_korean_share=0.0) is None
    assert drop_reason(ParsedPage("제목", korean + "§\x88우스")) == "garbled"


def test_collect_sorts_counts_and_pairs() -> None:
    ko_ok = ParsedPage("제목", "한국어 본문입니다. " * 20)

    def never() -> ParsedPage | None:
        raise AssertionError("the English side of a dropped page must not be parsed")

    pairs: list[sample.Pair] = [
        ("c:b", "u/b.ko", "u/b.en", ko_ok, lambda: ParsedPage("Title", "English body")),
        ("c:a", "u/a.ko", "u/a.en", ko_ok, lambda: None),
        ("c:z", "u/z.ko", "u/z.en", ParsedPage("Title", "Untranslated body. " * 20), never),
    ]
    ko_bytes, en_bytes, counts = sample._collect(iter(pairs), 100, 0.5)
    ko_rows = [json.loads(line) for line in ko_bytes.decode().splitlines()]
    en_rows = [json.loads(line) for line in en_bytes.decode().splitlines()]
    assert [r["id"] for r in ko_rows] == ["c:a", "c:b"]
    assert list(ko_rows[0]) == ["id", "url", "title", "text", "language"]
    assert en_rows == [
        {"id": "c:b", "url": "u/b.en", "title": "Title", "text": "English body", "language": "en"}
    ]
    assert (counts.pages_seen, counts.kept, counts.with_english) == (3, 2, 1)
    assert counts.dropped["untranslated"] == 1


def test_missing_apt_get_names_cause_and_alternatives(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no apt-get, no dpkg-deb
    with pytest.raises(SampleSourceError, match="apt-get") as err:
        build_sample(tmp_path / "out", DEFAULT_PACKAGES, work_dir=tmp_path / "work")
    assert err.value.reason == "apt_missing"
    assert "data=wiki_namu" in str(err.value) and "data=kowiki_shared" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_unavailable_pin_names_available_versions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(registry, "available_versions", lambda name: ["12.0", "11.0"])
    with pytest.raises(SampleSourceError, match=r"debian-faq=11\.1 is not available.*12\.0, 11\.0") as err:
        build_sample(tmp_path / "out", DEFAULT_PACKAGES, work_dir=tmp_path / "work")
    assert err.value.reason == "version_unavailable"
    assert "allow_other_versions" in str(err.value) and "data=kowiki_shared" in str(err.value)


def test_unpaired_roles_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Korean and English"):
        build_sample(tmp_path, [DebianPackage("debian-faq-ko", "11.1", "debian-faq-ko")])
    with pytest.raises(ValueError, match="unknown package roles"):
        build_sample(tmp_path, [DebianPackage("x", "1", "nope")])


# --------------------------------------------------------------------------
# Real packages (network to the Debian mirror, ~15 MB, ~20 s per build)
# --------------------------------------------------------------------------


def _build_or_skip(out_dir: Path, packages: Sequence[DebianPackage], **kwargs: Any) -> sample.SampleReport:
    try:
        return build_sample(out_dir, packages, **kwargs)
    except SampleSourceError as err:
        if err.reason in NETWORK_REASONS:
            pytest.skip(f"Debian packages unavailable here ({err.reason}): {err}")
        raise


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_build_sample_real_packages(tmp_path: Path) -> None:
    report = _build_or_skip(tmp_path / "a", DEFAULT_PACKAGES)
    assert report.docs_ko >= 1000
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
    assert {p["name"]: p["version"] for p in manifest["packages"]} == {
        p.name: p.version for p in DEFAULT_PACKAGES
    }
    assert all(len(p["sha256"]) == 64 for p in manifest["packages"])
    assert manifest["totals"]["docs_ko"] == report.docs_ko
    for corpus, counts in manifest["corpora"].items():
        ko = [json.loads(x) for x in (tmp_path / "a/ko" / f"{corpus}.jsonl").read_text("utf-8").splitlines()]
        en = [json.loads(x) for x in (tmp_path / "a/en" / f"{corpus}.jsonl").read_text("utf-8").splitlines()]
        assert len(ko) == counts["kept"] > 0 and len(en) == counts["with_english"]
        assert [r["id"] for r in ko] == sorted(r["id"] for r in ko)
        assert {r["id"] for r in en} <= {r["id"] for r in ko}
        assert all(r["language"] == "ko" and r["title"] and sample.HANGUL_RE.search(r["text"]) for r in ko)
        assert all(r["language"] == "en" and r["title"] and r["text"] for r in en)
        assert all(r["id"].startswith(f"{corpus}:") and r["url"].startswith("https://") for r in ko + en)
        if counts["with_english"] == counts["kept"]:  # then every Korean id has its English row
            assert [r["id"] for r in en] == [r["id"] for r in ko]
    # second run (cached .debs in a work dir) gives byte-identical output
    _build_or_skip(tmp_path / "b", DEFAULT_PACKAGES, work_dir=tmp_path / "work")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


@pytest.mark.slow
def test_build_sample_other_version_and_min_docs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    faq = [
        DebianPackage("debian-faq-ko", "0.0-not-a-version", "debian-faq-ko"),
        DebianPackage("debian-faq", "11.1", "debian-faq-en"),
    ]
    with pytest.warns(UserWarning, match="pinned 0.0-not-a-version unavailable"):
        report = _build_or_skip(
            tmp_path / "out", faq, min_docs=10, allow_other_versions=True, work_dir=tmp_path
        )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    used = {p["name"]: p for p in manifest["packages"]}["debian-faq-ko"]
    assert used["pinned_version"] == "0.0-not-a-version" and used["version"] != used["pinned_version"]
    assert manifest["warnings"] == list(report.warnings) and len(report.warnings) == 1
    with pytest.raises(SampleSourceError, match="fewer than min_docs") as err:
        build_sample(
            tmp_path / "out2",
            faq[1:] + [DebianPackage("debian-faq-ko", "11.1", "debian-faq-ko")],
            min_docs=10_000,
            work_dir=tmp_path,
        )
    assert err.value.reason == "too_few_docs" and "data=kowiki_shared" in str(err.value)


@pytest.mark.skipif(not all(map(shutil.which, ("dpkg-deb", "tar"))), reason="needs dpkg-deb and tar")
def test_extract_only_selected_members(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: fake-help\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n"
    )
    for rel in ("usr/share/help/ko/a.page", "usr/share/help/ko/figures/x.png", "usr/share/help/de/a.page"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("x")
    deb = tmp_path / "fake.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(pkg), str(deb)], check=True, capture_output=True
    )
    dest = tmp_path / "x"
    dest.mkdir()
    registry.extract_deb(deb, dest, ("./usr/share/help/ko/*.page",))
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()] == [
        "usr/share/help/ko/a.page"
    ]
    with pytest.raises(registry.RegistryError, match="layout changed") as err:
        registry.extract_deb(deb, dest, ("./usr/share/libreoffice/*",))
    assert err.value.reason == "bad_package"
