"""The documents stay true to the repository: docs/cimc_tuning.md's contents list, and the files they name."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUNING = ROOT / "docs" / "cimc_tuning.md"
# Paths of result files, sweeps and docs as the README, the docs, the recipes' configs and the bench scripts name them.
NAMED_FILE = re.compile(r"\b((?:bench/results|bench/sweeps|docs)/[\w.\-]+\.(?:md|jsonl|log|yaml|patch|png))")


def github_anchor(title: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def test_github_anchor_by_hand():
    assert github_anchor("H(Y) on p(y) averaged over batches (`marginal_momentum`)") == \
        "hy-on-py-averaged-over-batches-marginal_momentum"
    assert github_anchor("The issue's bar at the defaults") == "the-issues-bar-at-the-defaults"


def test_tuning_contents_list_every_heading_in_order():
    text = TUNING.read_text()
    headings = [(len(m.group(1)) - 2, m.group(2)) for m in re.finditer(r"^(##+) (.+)$", text, re.M)]
    listed = [(len(m.group(1)) // 2, m.group(2), m.group(3))
              for m in re.finditer(r"^( *)- \[(.+)\]\(#([^)]+)\)$", text, re.M)]
    assert [(level, title) for level, title, _ in listed] == headings
    anchors = [anchor for _, _, anchor in listed]
    assert len(set(anchors)) == len(anchors)  # GitHub would add -1 to a repeated one
    assert anchors == [github_anchor(title) for _, title in headings]


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("egs/*/conf/*.yaml")),
            *sorted((ROOT / "bench").glob("*.py")), *sorted((ROOT / "bench").glob("*.sh")),
            *sorted((ROOT / "bench" / "results").glob("*.md")), *sorted((ROOT / "bench" / "sweeps").glob("*.yaml"))]


def test_files_named_in_the_documents_exist():
    named, missing = 0, []
    for document in documents():
        for path in {m.group(1) for m in NAMED_FILE.finditer(document.read_text())}:
            named += 1
            if not (ROOT / path).exists():
                missing.append(f"{document.relative_to(ROOT)}: {path}")
    assert named > 100  # the pattern still finds the references (several hundred today)
    assert not missing, "files named in the documents but not in the repository:\n" + "\n".join(missing)
