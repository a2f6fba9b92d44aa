"""Config flow: params.yaml is the composition of conf/, and every option loads into its dataclass."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kosparse.config import (
    ChunkConfig,
    ConfigError,
    DataConfig,
    IngestConfig,
    TeacherConfig,
    load_section,
    read_params,
    to_dataclass,
)
from kosparse.params import compose

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_is_the_composition_of_conf(tmp_path: Path) -> None:
    out = compose(tmp_path / "params.yaml", ROOT / "conf")
    assert (ROOT / "params.yaml").read_text() == out.read_text(), "params.yaml is stale: run `make params`"


@pytest.mark.parametrize("overrides", [[], ["experiment=smoke"], ["experiment=kowiki"], ["experiment=full"],
                                       ["data=wiki_namu", "teacher=me5_large"]])
def test_every_preset_loads_into_typed_sections(tmp_path: Path, overrides: list[str]) -> None:
    params = read_params(compose(tmp_path / "p.yaml", ROOT / "conf", overrides))
    data = load_section(DataConfig, "data", params)
    teacher = load_section(TeacherConfig, "teacher", params)
    load_section(IngestConfig, "ingest", params)
    load_section(ChunkConfig, "chunk", params)
    assert data.sources and teacher.dim in {384, 1024}


def test_production_teacher_is_the_hub_model(tmp_path: Path) -> None:
    params = read_params(compose(tmp_path / "p.yaml", ROOT / "conf", ["experiment=full"]))
    teacher = load_section(TeacherConfig, "teacher", params)
    assert teacher.model_name_or_path == "intfloat/multilingual-e5-large" and teacher.build == "none"
    assert (teacher.query_prefix, teacher.passage_prefix) == ("query: ", "passage: ")


def test_invalid_values_name_the_key() -> None:
    with pytest.raises(ConfigError, match="ingest.min_hangul_ratio"):
        to_dataclass(IngestConfig, {"min_hangul_ratio": 1.5}, "ingest")
    with pytest.raises(ConfigError, match="chunk.splitter"):
        to_dataclass(ChunkConfig, {"splitter": "nltk"}, "chunk")
    with pytest.raises(ConfigError, match="^chunk:"):
        to_dataclass(ChunkConfig, {"overlap_sentence": 1}, "chunk")  # unknown key (typo)
    with pytest.raises(ConfigError, match="^ingest:"):
        to_dataclass(IngestConfig, {"min_chars": "many"}, "ingest")  # wrong type
    with pytest.raises(ConfigError, match="format"):
        to_dataclass(DataConfig, {"sources": [{"name": "x", "paths": ["a"], "format": "csv"}]}, "data")


def test_missing_params_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="make params"):
        read_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {}}))
    with pytest.raises(ConfigError, match="section 'chunk' missing"):
        load_section(ChunkConfig, "chunk", path=tmp_path / "params.yaml")
