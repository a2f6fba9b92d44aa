"""The whole DVC pipeline in a temporary git repo: repro, a no-op second repro, one param change.

Runs the real stages (teacher conversion included) on the user-files configuration (`data=wiki_namu`)
with small generated Korean documents, so it needs neither apt nor ../shared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kosparse.params import compose

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TOPICS = {
    "서울": ["서울은 대한민국의 수도이다.", "서울에는 한강이 흐른다.", "서울의 인구는 약 천만 명이다."],
    "부산": ["부산은 대한민국 제2의 도시이다.", "부산에는 큰 항구가 있다.", "해운대는 부산의 해수욕장이다."],
    "머신러닝": ["머신러닝은 인공지능의 한 분야이다.", "머신러닝 모델은 데이터로 학습한다.", "딥러닝은 신경망을 쓴다."],
    "김치": ["김치는 한국의 전통 음식이다.", "김치는 배추로 담근다.", "김장은 겨울에 김치를 담그는 일이다."],
    "축구": ["축구는 공을 차는 운동이다.", "월드컵은 4년마다 열린다.", "한국 축구 대표팀은 아시아의 강호이다."],
    "태양": ["태양은 태양계의 중심 별이다.", "지구는 태양 주위를 돈다.", "태양 에너지는 핵융합에서 나온다."],
}


def _write_corpus(path: Path, n_docs: int = 60, offset: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(TOPICS)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(offset, offset + n_docs):
            topic = names[i % len(names)]
            sents = TOPICS[topic]
            paras = [f"{topic} 문서 {i}번의 {j}번째 문단이다. " + " ".join(sents[(i + j + k) % 3] for k in range(3))
                     for j in range(1 + i % 4)]
            doc = {"id": str(i), "url": f"https://example.org/{i}", "title": f"{topic} {i}",
                   "text": "\n".join(paras), "language": "ko"}
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


OVERRIDES = ["data=wiki_namu", "experiment=smoke"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repo holding this project's pipeline files and a small corpus."""
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "conf", "stages", "src", ".dvc", ".dvcignore", ".gitignore"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("cache", "tmp", "__pycache__",
                                                                            "config.local"))
        else:
            shutil.copy2(src, repo / name)
    _write_corpus(repo / "data/raw/user/wikipedia/part-000.jsonl")
    _write_corpus(repo / "data/raw/user/namuwiki/part-000.jsonl", 24, offset=1000)
    compose(repo / "params.yaml", repo / "conf", OVERRIDES)
    _run(["git", "init", "-q"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], repo)
    return repo


def _stages_run(log: str) -> set[str]:
    return {line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")}


def test_repro_then_noop_then_param_change(repo: Path) -> None:
    first = _run(["dvc", "repro"], repo)
    stages = set(_run(["dvc", "stage", "list", "--name-only"], repo).split())
    assert _stages_run(first) == stages
    meta = json.loads((repo / "data/neural_sparse_training/metadata.json").read_text())
    assert meta["total_queries"] > 0
    report = json.loads((repo / "data/neural_sparse_training/validation_report.json").read_text())
    assert report["ok"] is True
    terms = json.loads((repo / "data/synonyms/metadata.json").read_text())
    assert terms["pairs"] > 100 and terms["by_category"]["ml"] > 50  # at least the curated core list
    parallel = json.loads((repo / "data/synonyms/parallel_metadata.json").read_text())
    assert parallel["pairs"] == len((repo / "data/synonyms/ko_en_parallel.jsonl").read_text().splitlines())

    second = _run(["dvc", "repro"], repo)
    assert _stages_run(second) == set()
    assert "didn't change, skipping" in second

    compose(repo / "params.yaml", repo / "conf", [*OVERRIDES, "chunk.overlap_sentences=0"])
    third = _run(["dvc", "repro"], repo)
    ran = _stages_run(third)
    assert "chunk" in ran
    assert not ran & {"sample", "teacher", "ingest"}  # nothing upstream of chunk reruns

    # a mining parameter reruns mine -> assemble -> validate (and training, evaluation and export after them),
    # never the embeddings
    compose(repo / "params.yaml", repo / "conf", [*OVERRIDES, "chunk.overlap_sentences=0", "mine.top_k=30"])
    rows_readers = {"train", "train_retrieval_only", "evaluate_reference", "evaluate", "export"}
    assert _stages_run(_run(["dvc", "repro"], repo)) == {"mine", "assemble", "validate", *rows_readers}


def test_forced_rerun_gives_byte_identical_training_rows(repo: Path) -> None:
    train = repo / "data/neural_sparse_training/train.jsonl"
    if not train.exists():
        _run(["dvc", "repro"], repo)
    terms = repo / "data/synonyms/ko_en_terms.jsonl"
    before, before_terms = train.read_bytes(), terms.read_bytes()
    _run(["dvc", "repro", "--force"], repo)
    assert train.read_bytes() == before
    assert terms.read_bytes() == before_terms
