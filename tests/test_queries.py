"""Tests of the `queries` stage: title and first-sentence queries, duplicates, and the LLM path against a
local OpenAI-compatible HTTP server (stdlib ``http.server`` on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kosparse.chunk import PASSAGE_SCHEMA
from kosparse.config import ConfigError, load_section
from kosparse.llm import LLMConfig, LLMError, build_messages, cache_key, parse_questions
from kosparse.queries import (
    QUERY_SCHEMA,
    DedupeConfig,
    Deduper,
    QueriesConfig,
    dedupe_key,
    kiwi_first_splitter,
    make_queries,
    select_llm_passages,
)

SplitFn = Callable[[Sequence[str]], list[list[tuple[int, int]]]]

CARTER_0 = ("지미 카터는 미국의 제39대 대통령이다. "
            "그는 조지아주 플레인스에서 태어났으며 해군 장교로 복무하였다.\n정계 입문.\n"
            "1962년 조지아주 상원 의원 선거에 출마하였고, 1970년에는 조지아 주지사로 당선되었다.")
CARTER_1 = ("대통령 퇴임 후에는 카터 센터를 세워 국제 분쟁의 중재와 인권 활동에 힘썼고, "
            "2002년 노벨 평화상을 받았다.")
MATH = ("수학은 수, 양, 구조, 공간, 변화 등의 개념을 다루는 학문이다. "
        "현대 수학은 엄밀한 논리에 근거하여 추상적 대상을 탐구한다.\n"
        "수학은 과학의 여러 분야와 깊은 연관을 맺고 있다.")
SHORT = "짧은 문서는 한 문장으로 끝나는 문서이다.\n끝."
NAMU_CARTER = "지미 카터는 미국의 제39대 대통령이다. 나무위키의 이 문서는 그의 생애와 업적을 자세히 다룬다."
OUTLINE = "개요.\n이 문서는 개요만 있는 짧은 문서로, 본문은 아직 작성되지 않았다."
JOSEON = ("조선은 1392년부터 1897년까지 한반도를 통치한 왕조로, 태조 이성계가 고려를 "
          "무너뜨리고 세웠으며, 한양을 도읍으로 삼아 유교를 국가 이념으로 받들고 과거 제도와 "
          "관료제를 정비하였고, 훈민정음을 창제하여 백성이 글을 쉽게 익히도록 하였으며, "
          "임진왜란과 병자호란을 겪은 뒤에도 오백 년 넘게 이어졌다.\n"
          "조선의 역사는 보통 전기와 후기로 나뉜다.")


def paragraph_starts(text: str) -> list[int]:
    """Offsets of paragraph starts: what `chunk` stores for a passage it did not split."""
    starts, off = [], 0
    for para in text.split("\n"):
        starts.append(off)
        off += len(para) + 1
    return starts


def passage(source: str, doc_id: str, k: int, title: str, text: str,
            starts: list[int] | None = None) -> dict[str, Any]:
    return {"passage_id": f"{source}:{doc_id}#{k}", "source": source, "doc_id": doc_id, "chunk_index": k,
            "title": title, "url": f"https://example.org/{doc_id}", "text": text, "n_tokens": len(text) // 2,
            "sentence_starts": paragraph_starts(text) if starts is None else starts}


def write_passages(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=PASSAGE_SCHEMA), path)
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    table = pq.read_table(path)
    assert table.schema.equals(QUERY_SCHEMA)
    return table.to_pylist()


@pytest.fixture(scope="module")
def kiwi() -> SplitFn:
    return kiwi_first_splitter(1)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    math_starts = [0, MATH.index("현대"), MATH.index("\n") + 1]  # chunk split this paragraph
    return write_passages(tmp_path / "passages.parquet", [
        passage("kowiki", "1", 0, "지미 카터", CARTER_0),
        passage("kowiki", "1", 1, "지미 카터", CARTER_1),
        passage("kowiki", "2", 0, "수학", MATH, math_starts),
        passage("kowiki", "3", 0, "짧은 문서", SHORT),
        passage("namu", "1", 0, "지미  카터", NAMU_CARTER),
        passage("kowiki", "4", 0, "개요 문서", OUTLINE),
        passage("kowiki", "5", 0, "조선", JOSEON),
    ])


def row(kind: str, pid: str, text: str, positive_text: str | None = None) -> dict[str, Any]:
    source, rest = pid.split(":", 1)
    return {"query_id": f"{kind}:{pid}", "text": text, "kind": kind, "positive_id": pid,
            "doc_id": rest.split("#")[0], "source": source, "positive_text": positive_text}


# --- title and first sentence --------------------------------------------------------------------

def test_title_and_first_sentence_queries(corpus: Path, tmp_path: Path, kiwi: SplitFn) -> None:
    seen: list[str] = []

    def split(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        seen.extend(texts)
        return kiwi(texts)

    cfg = QueriesConfig(max_query_chars=60, min_positive_chars=20)
    out, report = tmp_path / "queries.parquet", tmp_path / "queries_report.json"
    stats = make_queries(corpus, out, report, cfg, tmp_path / "cache.jsonl", split=split)

    assert read_rows(out) == [
        row("title", "kowiki:1#0", "지미 카터"),
        row("first_sentence", "kowiki:1#0", "지미 카터는 미국의 제39대 대통령이다.",
            "그는 조지아주 플레인스에서 태어났으며 해군 장교로 복무하였다.\n정계 입문.\n"
            "1962년 조지아주 상원 의원 선거에 출마하였고, 1970년에는 조지아 주지사로 당선되었다."),
        row("title", "kowiki:2#0", "수학"),
        row("first_sentence", "kowiki:2#0", "수학은 수, 양, 구조, 공간, 변화 등의 개념을 다루는 학문이다.",
            "현대 수학은 엄밀한 논리에 근거하여 추상적 대상을 탐구한다.\n"
            "수학은 과학의 여러 분야와 깊은 연관을 맺고 있다."),
        row("title", "kowiki:3#0", "짧은 문서"),
        row("title", "kowiki:4#0", "개요 문서"),
        row("title", "kowiki:5#0", "조선"),
    ]
    # Kiwi saw first paragraphs only, cut to max_query_chars + 64, and never the one chunk had split.
    assert seen == [CARTER_0.split("\n")[0], SHORT.split("\n")[0], NAMU_CARTER, "개요.", JOSEON[:124]]
    assert stats.documents == 6 and stats.passages == 7
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["kept"] == {"title": 5, "first_sentence": 2, "llm": 0}
    assert data["candidates"] == {"title": 6, "first_sentence": 6, "llm": 0}
    assert data["dropped"] == {
        "title": {"duplicate": 1},  # namu's "지미  카터" = kowiki's after normalisation
        "first_sentence": {"duplicate": 1, "remainder_too_short": 1, "too_long": 1, "too_short": 1},
        "llm": {},
    }
    assert data["queries"] == 7 and "api_key" not in data["settings"]["llm"]
    assert (tmp_path / "cache.jsonl").exists()  # a persistent DVC output even with the LLM off


def test_kinds_can_be_switched_off_and_output_is_deterministic(corpus: Path, tmp_path: Path,
                                                               kiwi: SplitFn) -> None:
    cfg = QueriesConfig(first_sentence=False, max_query_chars=60)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    make_queries(corpus, a, tmp_path / "ra.json", cfg, tmp_path / "c.jsonl", split=kiwi)
    make_queries(corpus, b, tmp_path / "rb.json", QueriesConfig(first_sentence=False, max_query_chars=60,
                                                                batch_docs=2), tmp_path / "c.jsonl")
    assert {r["kind"] for r in read_rows(a)} == {"title"}
    assert pq.read_table(a).equals(pq.read_table(b))


def test_non_contiguous_documents_are_rejected(tmp_path: Path, kiwi: SplitFn) -> None:
    path = write_passages(tmp_path / "p.parquet", [
        passage("kowiki", "1", 0, "가", CARTER_0), passage("kowiki", "2", 0, "나", MATH),
        passage("kowiki", "1", 1, "가", CARTER_1)])
    with pytest.raises(ValueError, match="kowiki:1 are not contiguous"):
        make_queries(path, tmp_path / "q.parquet", tmp_path / "r.json", QueriesConfig(), tmp_path / "c.jsonl",
                     split=kiwi)


# --- duplicates ----------------------------------------------------------------------------------

def test_dedupe_key_strips_case_space_and_punctuation() -> None:
    assert dedupe_key("  Seoul의  인구는?! ") == "seoul의인구는"
    assert dedupe_key("ＡＢＣ, 가나") == dedupe_key("ａｂｃ 가나")  # casefold of full-width forms


def test_deduper_exact_everywhere_near_within_a_document() -> None:
    d = Deduper(DedupeConfig(jaccard=0.8, ngram=3))
    d.new_document()
    assert d.check("서울의 인구는 얼마인가?") is None
    assert d.check("서울의  인구는 얼마인가") == "duplicate"
    assert d.check("서울의 인구는 얼마인가요?") == "near_duplicate"  # 3-gram Jaccard 8/9
    assert d.check("서울의 면적은 얼마인가?") is None
    d.new_document()
    assert d.check("서울의 인구는 얼마인가요?") is None  # near duplicates only count within a document
    assert d.check("서울의 인구는 얼마인가?") == "duplicate"  # exact ones everywhere
    off = Deduper(DedupeConfig(exact=False, jaccard=None))
    assert off.check("가나다") is None and off.check("가나다") is None


# --- LLM: answers parsed --------------------------------------------------------------------------

def test_parse_questions() -> None:
    answer = ("<think>질문을 만들자.</think>다음은 검색 질문입니다:\n\n1. 지미 카터는 몇 대 대통령인가?\n"
              "2) **카터가 태어난 곳은?**\n- \"카터 센터는 무엇을 하나?\"\n")
    assert parse_questions(answer) == ["지미 카터는 몇 대 대통령인가?", "카터가 태어난 곳은?",
                                       "카터 센터는 무엇을 하나?"]
    assert parse_questions("카터는 언제 태어났나? 카터의 고향은?\n2002년 노벨상 수상자는") == [
        "카터는 언제 태어났나?", "카터의 고향은?", "2002년 노벨상 수상자는"]
    assert parse_questions("**카터의 고향은?**") == ["카터의 고향은?"]
    assert parse_questions("목록:\n* 카터 센터란?\n질문 3: 노벨상은 언제 받았나?") == [
        "카터 센터란?", "노벨상은 언제 받았나?"]
    assert parse_questions("   \n") == []


# --- LLM: a local OpenAI-compatible server --------------------------------------------------------

@dataclass
class FakeChatServer:
    """Speaks POST /v1/chat/completions; ``reply(user_message, call_no)`` gives (status, content)."""

    reply: Callable[[str, int], tuple[int, str]]
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = body["messages"][-1]["content"]
                with server.lock:
                    server.calls.append(body)
                    n = sum(1 for c in server.calls if c["messages"][-1]["content"] == user)
                status, content = server.reply(user, n)
                if status == 200:
                    payload: dict[str, Any] = {
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
                else:
                    payload = {"error": {"message": content, "type": "server_error"}}
                data = json.dumps(payload, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def chat_server() -> Iterator[Callable[[Callable[[str, int], tuple[int, str]]], tuple[FakeChatServer, str]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(reply: Callable[[str, int], tuple[int, str]]) -> tuple[FakeChatServer, str]:
        fake = FakeChatServer(reply)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(httpd)
        return fake, f"http://127.0.0.1:{httpd.server_address[1]}/v1"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def llm_config(base_url: str | None, **llm: Any) -> QueriesConfig:
    settings: dict[str, Any] = {"enabled": True, "model": "test-model", "base_url": base_url, "api_key": "k",
                                "fraction": 1.0, "max_passages": None, "min_passage_chars": 0,
                                "questions_per_passage": 2, "backoff_s": 0.01, "max_backoff_s": 0.05,
                                "timeout_s": 5.0, "concurrency": 2, "batch_size": 2, **llm}
    return QueriesConfig(title=False, first_sentence=False, llm=LLMConfig(**settings))


@pytest.fixture
def llm_corpus(tmp_path: Path) -> Path:
    return write_passages(tmp_path / "passages.parquet", [
        passage("kowiki", "1", 0, "지미 카터", CARTER_0),
        passage("kowiki", "1", 1, "지미 카터", CARTER_1),
        passage("kowiki", "2", 0, "수학", MATH),
    ])


ANSWERS = {
    "카터는 미국의": "1. 지미 카터는 몇 대 대통령인가?\n2. 지미 카터의 출생지는 어디인가?\n3. 넘치는 질문?",
    "카터 센터를": "1. 카터 센터는 무엇을 하는 곳인가?\n2. 지미 카터는 몇 대 대통령인가?",
    "수학은 수,": "1. 수학이 다루는 개념은 무엇인가?\n2. 수학이 다루는 개념은 무엇인가요?",
}


def answer_for(user: str) -> str:
    return next(a for marker, a in ANSWERS.items() if marker in user)


def test_llm_questions_then_cache_hit_on_rerun(chat_server: Any, llm_corpus: Path, tmp_path: Path) -> None:
    fake, url = chat_server(lambda user, n: (200, answer_for(user)))
    cfg, cache = llm_config(url), tmp_path / "cache.jsonl"
    out, report = tmp_path / "q.parquet", tmp_path / "r.json"
    make_queries(llm_corpus, out, report, cfg, cache)
    expected = [
        row("llm", "kowiki:1#0", "지미 카터는 몇 대 대통령인가?"),
        row("llm", "kowiki:1#0", "지미 카터의 출생지는 어디인가?"),
        row("llm", "kowiki:1#1", "카터 센터는 무엇을 하는 곳인가?"),
        row("llm", "kowiki:2#0", "수학이 다루는 개념은 무엇인가?"),
    ]
    for r, qid in zip(expected, ["llm:kowiki:1#0:0", "llm:kowiki:1#0:1", "llm:kowiki:1#1:0",
                                 "llm:kowiki:2#0:0"], strict=True):
        r["query_id"] = qid
    assert read_rows(out) == expected
    assert len(fake.calls) == 3
    body = fake.calls[0]
    assert body["model"] == "test-model" and body["seed"] == 0 and body["max_tokens"] == 256
    assert body["messages"][0]["role"] == "system" and "「지미 카터」" in body["messages"][1]["content"]
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["dropped"]["llm"] == {"duplicate": 1, "extra_question": 1, "near_duplicate": 1}
    assert data["llm"]["requests"] == 3 and data["llm"]["cache_hits"] == 0
    assert data["llm"]["completion_tokens"] == 15

    rerun = tmp_path / "q2.parquet"
    make_queries(llm_corpus, rerun, report, cfg, cache)
    assert len(fake.calls) == 3  # every answer came from the cache
    assert pq.read_table(rerun).equals(pq.read_table(out))
    assert json.loads(report.read_text(encoding="utf-8"))["llm"]["cache_hits"] == 3

    # Another prompt is another request; the cache key covers prompt and passage text.
    changed = llm_config(url, prompt="{text}\n\n검색 질문 {n}개를 쓰세요.")
    make_queries(llm_corpus, rerun, report, changed, cache)
    assert len(fake.calls) == 6
    keys = [json.loads(line)["key"] for line in cache.read_text(encoding="utf-8").splitlines()]
    assert len(keys) == len(set(keys)) == 6
    msgs = build_messages(cfg.llm, "수학", MATH)
    assert cache_key(cfg.llm, msgs, 0) in keys and cache_key(cfg.llm, msgs, 1) not in keys


def test_llm_retries_after_500_and_timeout(chat_server: Any, llm_corpus: Path, tmp_path: Path) -> None:
    import time

    def reply(user: str, n: int) -> tuple[int, str]:
        if "카터는 미국의" in user and n == 1:
            return 500, "overloaded"
        if "수학은 수," in user and n == 1:
            time.sleep(0.6)  # past the client's timeout
        return 200, answer_for(user)

    fake, url = chat_server(reply)
    report = tmp_path / "r.json"
    make_queries(llm_corpus, tmp_path / "q.parquet", report, llm_config(url, timeout_s=0.3),
                 tmp_path / "cache.jsonl")
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["llm"]["retries"] == 2 and data["llm"]["failed_requests"] == 0
    assert data["kept"]["llm"] == 4 and len(fake.calls) == 5


def test_llm_empty_and_garbage_answers_are_dropped(chat_server: Any, llm_corpus: Path,
                                                   tmp_path: Path) -> None:
    def reply(user: str, n: int) -> tuple[int, str]:
        if "카터는 미국의" in user:
            return 200, ""
        if "카터 센터를" in user:
            return 200, "1. 가\n2. 카터 센터를 세워 국제 분쟁의 중재와 인권 활동에 힘썼고\n3. asdf qwer!!!"
        return 200, "<think>수학 문서에 어울리는 질문을 생각해 보자.</think>"

    fake, url = chat_server(reply)
    report, cache = tmp_path / "r.json", tmp_path / "cache.jsonl"
    cfg = llm_config(url, questions_per_passage=3)
    make_queries(llm_corpus, tmp_path / "q.parquet", report, cfg, cache)
    assert read_rows(tmp_path / "q.parquet") == []
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["dropped"]["llm"] == {"copy_of_passage": 1, "empty_answer": 1, "no_hangul": 1,
                                      "no_questions": 1, "too_short": 1}
    # Bad answers are still answers: cached, not asked again.
    make_queries(llm_corpus, tmp_path / "q.parquet", report, cfg, cache)
    assert len(fake.calls) == 3


def test_llm_fatal_status_and_too_many_failures(chat_server: Any, llm_corpus: Path, tmp_path: Path) -> None:
    _, url = chat_server(lambda user, n: (401, "bad key"))
    with pytest.raises(LLMError, match="answered 401 for model 'test-model'"):
        make_queries(llm_corpus, tmp_path / "q.parquet", tmp_path / "r.json", llm_config(url),
                     tmp_path / "c1.jsonl")

    fake, url = chat_server(lambda user, n: (200, answer_for(user)) if "수학" in user else (503, "down"))
    cache = tmp_path / "c2.jsonl"
    with pytest.raises(LLMError, match="2 of 3 LLM requests failed"):
        make_queries(llm_corpus, tmp_path / "q.parquet", tmp_path / "r.json", llm_config(url, max_retries=1),
                     cache)
    assert len(fake.calls) == 5  # 2 passages x (1 + 1 retry) + 1
    assert len(cache.read_text(encoding="utf-8").splitlines()) == 1  # the answer received is kept


def test_llm_passage_sample_is_seeded(tmp_path: Path) -> None:
    rows = [passage("kowiki", str(i), 0, f"문서 {i}", f"문서 {i}의 본문입니다. " * (1 + i % 3))
            for i in range(40)]
    path = write_passages(tmp_path / "p.parquet", rows)
    cfg = LLMConfig(fraction=0.5, max_passages=None, min_passage_chars=0)
    a = select_llm_passages(path, cfg, seed=0)
    assert len(a) == 20 and a == select_llm_passages(path, cfg, seed=0)
    assert a != select_llm_passages(path, cfg, seed=1)
    capped = select_llm_passages(path, LLMConfig(fraction=0.5, max_passages=5, min_passage_chars=0), seed=0)
    assert len(capped) == 5 and capped < a  # the cap keeps the best-ranked of the same order
    long_only = select_llm_passages(path, LLMConfig(fraction=1.0, max_passages=None, min_passage_chars=30), 0)
    assert long_only == {r["passage_id"] for r in rows if len(r["text"]) >= 30}


# --- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "message"), [
    ({"llm": {"enabled": True}}, "queries.llm.model: required"),
    ({"llm": {"prompt": "질문을 쓰세요"}}, "queries.llm.prompt: must contain {text}"),
    ({"llm": {"prompt": "{text} {lang}"}}, r"unknown fields \['lang'\]"),
    ({"llm": {"provider": "ollama"}}, "unknown provider 'ollama'"),
    ({"dedupe": {"jaccard": 1.5}}, "queries.dedupe.jaccard"),
    ({"min_query_chars": 0}, "queries.min_query_chars"),
    ({"bogus": 1}, "Key 'bogus' not in 'QueriesConfig'"),
])
def test_bad_config_is_rejected(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_section(QueriesConfig, "queries", {"queries": values})


def test_config_from_params() -> None:
    cfg = load_section(QueriesConfig, "queries", {"queries": {
        "llm": {"enabled": True, "provider": "openai", "model": "Qwen/Qwen2.5-7B-Instruct",
                "base_url": "http://localhost:8000/v1", "max_passages": None},
        "dedupe": {"jaccard": None}}})
    assert cfg.llm.model == "Qwen/Qwen2.5-7B-Instruct" and cfg.llm.max_passages is None
    assert cfg.dedupe.jaccard is None and cfg.title and cfg.first_sentence


# --- LLM: a local transformers model -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer GPT-2 with random weights and a character-level Hangul tokenizer, saved to a folder."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    chars = sorted(set(CARTER_0 + CARTER_1 + MATH + "「」?.:-0123456789 \n"
                       "당신은한국어검색엔진의학습데이터를만드는도우미입니다"
                       "다음은위키문서의한부분입니다이글을찾으려는사용자가검색창에입력할법한자연스러운질문개를만들어주세요"
                       "각질문은이글만읽고답할수있어야합니다문장을그대로옮기지말고서로다른내용을물어번호를붙여줄에하나씩쓰세요"
                       "systemuserassistant"))
    vocab = {"[UNK]": 0, "[EOS]": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                          "{% if add_generation_prompt %}assistant: {% endif %}")
    config = GPT2Config(vocab_size=len(vocab), n_positions=1024, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=1, eos_token_id=1)
    model = GPT2LMHeadModel(config)
    path = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.mark.slow
def test_llm_transformers_provider(tiny_causal_lm: Path, llm_corpus: Path, tmp_path: Path) -> None:
    from kosparse.llm import TransformersGenerator

    cfg = llm_config(None, provider="transformers", model=str(tiny_causal_lm), temperature=0.0,
                     max_tokens=8, device="cpu")
    gen = TransformersGenerator(cfg.llm, seed=0)
    assert gen.chat
    answers = gen.generate([build_messages(cfg.llm, "수학", MATH)] * 2)
    assert len(answers) == 2 and all(not isinstance(a, Exception) for a in answers)
    assert answers[0] == answers[1]  # greedy

    cache, report = tmp_path / "cache.jsonl", tmp_path / "r.json"
    make_queries(llm_corpus, tmp_path / "q.parquet", report, cfg, cache)
    assert len(cache.read_text(encoding="utf-8").splitlines()) == 3
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["llm"]["requests"] == 3
    make_queries(llm_corpus, tmp_path / "q2.parquet", report, cfg, cache)  # no model is even loaded
    assert json.loads(report.read_text(encoding="utf-8"))["llm"]["cache_hits"] == 3
    assert pq.read_table(tmp_path / "q.parquet").equals(pq.read_table(tmp_path / "q2.parquet"))
