"""LLM-written search questions: prompts, an answer cache, two backends and an answer parser.

Any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, a hosted API) is reached through the
maintained ``openai`` client (its own retries off: :class:`OpenAIChatGenerator` retries with exponential
backoff and counts them); a local model runs in a ``transformers`` text-generation pipeline. Answers are
stored per request in an append-only JSONL file keyed by a hash of provider, model, messages (prompt and
passage text) and sampling settings, so a rerun never asks twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import string
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kosparse.config import ConfigError, require

Messages = list[dict[str, str]]

DEFAULT_SYSTEM_PROMPT = "당신은 한국어 검색 엔진의 학습 데이터를 만드는 도우미입니다."
DEFAULT_PROMPT = (
    "다음은 한국어 위키 문서 「{title}」의 한 부분입니다.\n\n"
    "{text}\n\n"
    "이 글을 찾으려는 사용자가 검색창에 입력할 법한 자연스러운 한국어 검색 질문 {n}개를 만들어 주세요.\n"
    "- 각 질문은 이 글만 읽고 답할 수 있어야 합니다.\n"
    "- 글의 문장을 그대로 옮기지 말고, 서로 다른 내용을 물어 주세요.\n"
    "- 번호를 붙여 한 줄에 하나씩, 질문만 쓰세요."
)

_PROMPT_FIELDS = {"title", "text", "n"}


def _template_fields(template: str, key: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{key}: bad template: {exc}") from exc


@dataclass
class LLMConfig:
    """``queries.llm``: search questions written by an LLM (off by default).

    Attributes:
        enabled: Ask the LLM at all.
        provider: ``openai`` — any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, a hosted
            API) through the ``openai`` client; ``transformers`` — a local text-generation pipeline.
        model: Model name on the endpoint, or a hub id / local folder for ``transformers``.
        base_url: Endpoint root, e.g. ``http://localhost:8000/v1`` (vLLM) or ``http://localhost:11434/v1``
            (Ollama); ``None`` uses ``OPENAI_BASE_URL`` or the OpenAI API.
        api_key: The key itself; better left ``None`` so that it stays out of ``params.yaml``.
        api_key_env: Environment variable read for the key when ``api_key`` is ``None``. Local servers
            that need no key get ``"EMPTY"``.
        temperature: Sampling temperature (0 = greedy).
        max_tokens: Maximum tokens of one answer.
        questions_per_passage: Questions asked for (``{n}`` in the prompt); extra ones are dropped.
        system_prompt: System message; empty for none.
        prompt: User message template with ``{text}`` and optionally ``{title}`` and ``{n}``.
        fraction: Fraction of the eligible passages that get LLM questions.
        max_passages: At most this many passages (``None``: no cap). Passages are picked by a hash of
            ``seed`` and the passage id, so the sample is stable when the corpus grows.
        min_passage_chars: Passages shorter than this are not eligible.
        require_hangul: Drop questions without any Hangul syllable (garbage, or another language).
        concurrency: Parallel requests (``openai``).
        batch_size: Requests per batch: answers are cached after each batch; the pipeline batch size
            for ``transformers``.
        timeout_s: Timeout of one HTTP request.
        max_retries: Retries of a request after a timeout, connection error, 408/409/429 or 5xx.
        backoff_s: Wait before the first retry; doubled at each further retry (``Retry-After`` wins).
        max_backoff_s: Cap on one wait.
        max_error_rate: The stage fails when more than this fraction of the requests made failed
            (after writing the answers it did get to the cache).
        device: ``transformers`` device (``cpu``, ``cuda``, ``cuda:1``); ``None`` picks one.
    """

    enabled: bool = False
    provider: str = "openai"
    model: str = ""
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 256
    questions_per_passage: int = 3
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    prompt: str = DEFAULT_PROMPT
    fraction: float = 1.0
    max_passages: int | None = 1000
    min_passage_chars: int = 100
    require_hangul: bool = True
    concurrency: int = 4
    batch_size: int = 16
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_error_rate: float = 0.05
    device: str | None = None

    def __post_init__(self) -> None:
        require(self.provider in {"openai", "transformers"}, "queries.llm.provider",
                 f"unknown provider {self.provider!r} (openai, transformers)")
        require(not self.enabled or bool(self.model), "queries.llm.model", "required when llm is enabled")
        fields = _template_fields(self.prompt, "queries.llm.prompt")
        require("text" in fields, "queries.llm.prompt", "must contain {text}")
        require(fields <= _PROMPT_FIELDS, "queries.llm.prompt",
                 f"unknown fields {sorted(fields - _PROMPT_FIELDS)}; known: {sorted(_PROMPT_FIELDS)}")
        require(0.0 <= self.temperature <= 2.0, "queries.llm.temperature", "must be in [0, 2]")
        require(self.max_tokens > 0, "queries.llm.max_tokens", "must be positive")
        require(self.questions_per_passage > 0, "queries.llm.questions_per_passage", "must be positive")
        require(0.0 <= self.fraction <= 1.0, "queries.llm.fraction", "must be in [0, 1]")
        require(self.max_passages is None or self.max_passages >= 0, "queries.llm.max_passages",
                 "must be >= 0 or null")
        require(self.concurrency > 0 and self.batch_size > 0, "queries.llm.concurrency/batch_size",
                 "must be positive")
        require(self.timeout_s > 0 and self.max_retries >= 0, "queries.llm.timeout_s/max_retries",
                 "need timeout_s > 0 and max_retries >= 0")
        require(0 <= self.backoff_s <= self.max_backoff_s, "queries.llm.backoff_s",
                 "need 0 <= backoff_s <= max_backoff_s")
        require(0.0 <= self.max_error_rate <= 1.0, "queries.llm.max_error_rate", "must be in [0, 1]")


class LLMError(RuntimeError):
    """The LLM endpoint or model cannot be used (bad key, unknown model, too many failed requests)."""


# --- answers -------------------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_MARKER = re.compile(r"^(?:\d{1,3}\s*[.)．:]|\(\d{1,3}\)|[\u2460-\u2473]|[•·▪◦‣]|[-*–]\s|[Qq]\d{0,3}\s*[.:)]"
                     r"|질문\s*\d{0,3}\s*[.:)])\s*")
_QUOTES = "\"'“”‘’「」『』`"


def parse_questions(answer: str) -> list[str]:
    """Split an LLM answer into questions.

    Reasoning blocks (``<think>…</think>``) are removed. When some lines are numbered or bulleted, only
    those lines are questions (a preamble such as "다음은 질문입니다:" is ignored); otherwise every
    non-empty line that does not end with a colon is, split further after ``?``. Markers, Markdown bold
    and surrounding quotes are stripped.

    Args:
        answer: The model's answer.

    Returns:
        Candidate questions in answer order (not yet length-checked or deduplicated).
    """
    text = _THINK.sub("", answer)
    if "</think>" in text:  # an unclosed reasoning block at the start
        text = text.rsplit("</think>", 1)[1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    marked = [_MARKER.sub("", ln, count=1) for ln in lines if _MARKER.match(ln)]
    items = marked or [q for ln in lines if not ln.endswith((":", "：")) for q in re.split(r"(?<=[?？])\s+", ln)]
    out = []
    for item in items:
        q = item.replace("**", "").strip().strip(_QUOTES + "*_ ").strip()
        if q:
            out.append(q)
    return out


# --- generation ----------------------------------------------------------------------------------

@dataclass
class Completion:
    """One successful answer.

    Attributes:
        text: The answer's text (may be empty).
        prompt_tokens: Prompt tokens, when the backend reports them.
        completion_tokens: Answer tokens, when the backend reports them.
        truncated: The answer hit ``max_tokens``.
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False


class Generator(Protocol):
    """A chat model: answers a batch of conversations; a failed request is returned as its exception."""

    retries: int

    def generate(self, chats: Sequence[Messages]) -> list[Completion | Exception]:
        """Answer each conversation.

        Raises:
            LLMError: When no request can succeed (bad key, unknown model).
        """
        ...


_RETRY_STATUS = {408, 409, 429}
_FATAL_STATUS = {401, 403, 404}


class OpenAIChatGenerator:
    """An OpenAI-compatible chat-completions endpoint, through the ``openai`` client.

    The client's own retries are off; this class retries timeouts, connection errors, 408/409/429 and
    5xx with exponential backoff (honouring ``Retry-After``), so retries are counted and configured in
    one place. 401, 403 and 404 raise :class:`LLMError` at once: no request can succeed.

    Args:
        cfg: LLM settings.
        seed: Sent with every request (servers that honour it sample reproducibly).

    Raises:
        LLMError: When the ``openai`` package is missing.
    """

    def __init__(self, cfg: LLMConfig, seed: int) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise LLMError("provider 'openai' needs the openai package: pip install 'kosparse[llm]'") from exc
        self.openai = openai
        self.cfg = cfg
        self.seed = seed
        key = cfg.api_key or os.environ.get(cfg.api_key_env) or "EMPTY"
        self.client = openai.OpenAI(base_url=cfg.base_url, api_key=key, timeout=cfg.timeout_s, max_retries=0)
        self.retries = 0
        self._lock = threading.Lock()

    def _wait(self, attempt: int, exc: Exception) -> float:
        wait = min(self.cfg.backoff_s * 2.0 ** attempt, self.cfg.max_backoff_s)
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        if header:
            with contextlib.suppress(ValueError):
                wait = min(max(float(header), 0.0), self.cfg.max_backoff_s)
        return wait

    def complete(self, messages: Messages) -> Completion:
        """Answer one conversation, retrying transient errors.

        Args:
            messages: Chat messages.

        Returns:
            The answer.

        Raises:
            LLMError: On 401/403/404.
            openai.APIError: When the request still fails after the retries, or fails for good.
        """
        oa = self.openai
        for attempt in range(self.cfg.max_retries + 1):
            try:
                resp = self.client.chat.completions.create(
                    model=self.cfg.model, messages=messages,  # type: ignore[arg-type]
                    temperature=self.cfg.temperature, max_tokens=self.cfg.max_tokens, seed=self.seed)
            except oa.APIStatusError as exc:
                if exc.status_code in _FATAL_STATUS:
                    where = self.cfg.base_url or "the OpenAI API"
                    raise LLMError(f"{where} answered {exc.status_code} for model {self.cfg.model!r}: "
                                   f"{exc.message}") from exc
                if attempt == self.cfg.max_retries or not (
                        exc.status_code in _RETRY_STATUS or exc.status_code >= 500):
                    raise
                wait = self._wait(attempt, exc)
            except oa.APIConnectionError as exc:  # includes APITimeoutError
                if attempt == self.cfg.max_retries:
                    raise
                wait = self._wait(attempt, exc)
            else:
                choice = resp.choices[0] if resp.choices else None
                usage = resp.usage
                return Completion(
                    text=(choice.message.content or "") if choice is not None else "",
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=usage.completion_tokens if usage else 0,
                    truncated=choice is not None and choice.finish_reason == "length")
            with self._lock:
                self.retries += 1
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def generate(self, chats: Sequence[Messages]) -> list[Completion | Exception]:
        """Answer the conversations with ``concurrency`` requests in flight.

        Args:
            chats: Conversations.

        Returns:
            One completion, or the exception of a failed request, per conversation, in order.

        Raises:
            LLMError: On a fatal answer (see :meth:`complete`).
        """
        def one(messages: Messages) -> Completion | Exception:
            try:
                return self.complete(messages)
            except self.openai.APIError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, max(1, len(chats)))) as pool:
            return list(pool.map(one, chats))


class TransformersGenerator:
    """A local ``transformers`` text-generation pipeline (chat template when the tokenizer has one).

    Args:
        cfg: LLM settings (``model`` is a hub id or a local folder).
        seed: Seeds sampling before each batch.

    Raises:
        LLMError: When the model cannot be loaded.
    """

    def __init__(self, cfg: LLMConfig, seed: int) -> None:
        from transformers import pipeline

        self.cfg = cfg
        self.seed = seed
        self.retries = 0
        try:
            self.pipe = pipeline("text-generation", model=cfg.model, device=cfg.device, dtype="auto")
        except OSError as exc:
            raise LLMError(f"cannot load model {cfg.model!r}: {exc}".splitlines()[0]) from exc
        tok = self.pipe.tokenizer
        if tok is None:
            raise LLMError(f"{cfg.model!r} has no tokenizer")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        self.chat = bool(getattr(tok, "chat_template", None))

    def generate(self, chats: Sequence[Messages]) -> list[Completion | Exception]:
        """Generate one answer per conversation.

        Args:
            chats: Conversations.

        Returns:
            One completion per conversation, in order.
        """
        from transformers import set_seed

        set_seed(self.seed)
        inputs: list[Any] = (list(chats) if self.chat
                             else ["\n\n".join(m["content"] for m in chat) + "\n\n" for chat in chats])
        sample = self.cfg.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": self.cfg.max_tokens, "do_sample": sample,
                                  "return_full_text": False, "batch_size": self.cfg.batch_size}
        if sample:
            kwargs["temperature"] = self.cfg.temperature
        outputs = self.pipe(inputs, **kwargs)
        results: list[Completion | Exception] = []
        for out in outputs:
            generated = out[0]["generated_text"]
            if isinstance(generated, list):  # a chat with the answer appended
                generated = generated[-1]["content"] if generated else ""
            results.append(Completion(text=str(generated)))
        return results


def build_generator(cfg: LLMConfig, seed: int) -> Generator:
    """The generator for ``cfg.provider``.

    Args:
        cfg: LLM settings.
        seed: Generation seed.

    Returns:
        An :class:`OpenAIChatGenerator` or a :class:`TransformersGenerator`.
    """
    if cfg.provider == "transformers":
        return TransformersGenerator(cfg, seed)
    return OpenAIChatGenerator(cfg, seed)


def build_messages(cfg: LLMConfig, title: str, text: str) -> Messages:
    """The chat sent for one passage.

    Args:
        cfg: LLM settings (prompts and question count).
        title: Document title.
        text: Passage text.

    Returns:
        System (when set) and user messages.
    """
    user = cfg.prompt.format(title=title, text=text, n=cfg.questions_per_passage)
    system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    return [*system, {"role": "user", "content": user}]


def cache_key(cfg: LLMConfig, messages: Messages, seed: int) -> str:
    """Key of one request in the answer cache: provider, model, messages (prompt and passage text) and
    the sampling settings that change the answer.

    Args:
        cfg: LLM settings.
        messages: The chat.
        seed: Generation seed.

    Returns:
        A SHA-256 hex digest.
    """
    payload = {"provider": cfg.provider, "model": cfg.model, "messages": messages,
               "temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": seed}
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    """Append-only JSONL cache of LLM answers (``{"key", "answer", ...}`` per line).

    A line that does not parse (a run killed mid-write) is skipped and counted.

    Args:
        path: The cache file (created when missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: dict[str, str] = {}
        self.bad_lines = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                    self.answers[rec["key"]] = rec["answer"]
                except (ValueError, KeyError, TypeError):
                    self.bad_lines += 1

    def get(self, key: str) -> str | None:
        """The cached answer for ``key``, if any."""
        return self.answers.get(key)

    def add(self, records: Sequence[dict[str, Any]]) -> None:
        """Append records (each with ``key`` and ``answer``) and flush them to disk."""
        if not records:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
                self.answers[rec["key"]] = rec["answer"]
