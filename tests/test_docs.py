"""The README and docs/ stay true: the generated references match the code, every relative link resolves (to a file,
and to a heading where it names one), and the README fits a screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lowloss.orchestrator.cli import reference as cli_reference
from lowloss.orchestrator.spec import reference as spec_reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
README_LINES = 200


@pytest.mark.parametrize(
    ("page", "generate", "command"),
    [
        ("spec.md", spec_reference.reference, "python -m lowloss.orchestrator.spec.reference > docs/spec.md"),
        ("cli.md", cli_reference.reference, "python -m lowloss.orchestrator.cli.reference > docs/cli.md"),
    ],
)
def test_generated_reference_is_current(page, generate, command):
    stored = (ROOT / "docs" / page).read_text()
    assert stored == generate(), f"docs/{page} is stale: regenerate it with `{command}`"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_pages_exist_and_link_checking_sees_links():
    assert len(PAGES) > 10
    assert any(_links(p) for p in PAGES)
    assert "spec.md" in " ".join(_links(ROOT / "README.md"))


def test_the_readme_fits_a_screen():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_LINES, f"README.md has {len(lines)} lines; the manual lives in docs/"
