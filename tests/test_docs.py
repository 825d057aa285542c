"""The documentation: the generated reference pages are current, the site builds strictly
(broken links, missing pages and unknown anchors fail), and the README stays short with its
two set-up commands."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_generated_reference_is_current():
    done = subprocess.run(
        [sys.executable, str(REPO / "docs" / "generate.py"), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, (
        f"{done.stderr.strip()}: run `python docs/generate.py` and commit the pages"
    )


def test_a_stale_page_is_found(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import generate
    finally:
        sys.path.remove(str(REPO / "docs"))
    for page in generate.WRITERS:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((REPO / "docs" / page).read_text())
    monkeypatch.setattr(generate, "DOCS", tmp_path)
    assert generate.main(["--check"]) == 0
    config = tmp_path / "reference" / "config.md"
    config.write_text(config.read_text().replace("`per_image`", "`per_picture`"))
    assert generate.main(["--check"]) == 1
    assert generate.main([]) == 0 and "`per_image`" in config.read_text()  # written again


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").is_file()
    assert (tmp_path / "site" / "tutorials" / "nuclei" / "index.html").is_file()


def test_the_readme_is_short_and_keeps_the_two_set_up_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    block = text.split("## Set up (a fresh machine)")[1].split("```")[1]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands[1:] == ["make demo", "make test"]  # after the fence's "bash"


def test_the_readme_links_to_pages_that_exist():
    import re

    text = (REPO / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)#]+)[)#]", text) if "://" not in t]
    assert len(targets) >= 15
    missing = [t for t in targets if not (REPO / t).exists()]
    assert not missing
