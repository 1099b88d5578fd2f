"""Every reference document the code cites is in docs/reference/, with the section it names."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"(theory-and-calibration|vllm-speculative-decoding)\.md[^§\n]{0,12}(§\s?(\d+(?:\.\d+)*))?")


def _headings(doc: Path) -> set[str]:
    out = set()
    for line in doc.read_text().splitlines():
        if m := re.match(r"#+\s+(\d+(?:\.\d+)*)[\s.]", line):
            out.add(m.group(1))
    return out


def test_cited_documents_and_sections_exist():
    cited: dict[str, set[str]] = {}
    for path in [*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("src").rglob("*.json")]:
        for m in CITATION.finditer(path.read_text()):
            cited.setdefault(m.group(1), set())
            if m.group(3):
                cited[m.group(1)].add(m.group(3))
    assert set(cited) == {"theory-and-calibration", "vllm-speculative-decoding"}
    for name, sections in cited.items():
        doc = ROOT / "docs" / "reference" / f"{name}.md"
        assert doc.exists(), doc
        missing = sorted(sections - _headings(doc))
        assert not missing, f"{doc.name} lacks the cited sections {missing}"
