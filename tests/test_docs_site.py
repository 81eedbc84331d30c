"""The documentation site builds with ``mkdocs build --strict``, so a broken link between pages fails CI, and
the README's links into docs/ (relative, so that they work on GitHub too) point at files that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mkdocs() -> list[str]:
    pytest.importorskip(
        "mkdocs", reason="mkdocs is not installed: `pip install -e '.[docs]'` (make test does)"
    )
    pytest.importorskip("material", reason="mkdocs-material is not installed: `pip install -e '.[docs]'`")
    return [sys.executable, "-m", "mkdocs", "build", "--strict"]


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*_mkdocs(), "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", **os.environ},
    )


def test_site_builds_strict(tmp_path):
    p = _build(ROOT, tmp_path / "site")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "report.png").is_file()  # the report screenshot is on the site
    for page in ("cli", "validate", "demo", "papers"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The check above can fail: the same site with one link to a missing page does not build; a page
    that the nav does not list yet (another helper's new page) does not fail it."""
    _mkdocs()
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "docs" / "not_in_nav.md").write_text("# A page not in the nav\n\nSee [the CLI](cli.md).\n")
    p = _build(tmp_path, tmp_path / "site")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "site" / "not_in_nav" / "index.html").is_file()
    with open(tmp_path / "docs" / "cli.md", "a") as f:
        f.write("\nSee [the missing page](no_such_page.md).\n")
    p = _build(tmp_path, tmp_path / "site")
    assert p.returncode != 0
    assert "no_such_page.md" in p.stdout + p.stderr


def test_nav_lists_existing_pages():
    text = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r":\s*([\w/]+\.md)\s*$", text, re.M)
    assert "index.md" in pages and len(pages) >= 8
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), f"mkdocs.yml's nav names docs/{page}, which does not exist"


def test_readme_links_resolve():
    """Relative links in README.md (to docs/ pages, examples/, images) name files in the repository."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert any(t.startswith("docs/") for t in local)
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
