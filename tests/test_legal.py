"""LICENSE and CITATION.cff: the package's license and how to cite it and the papers it implements."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def project(key):
    """A string setting of pyproject.toml's [project] table (read without tomllib, which Python 3.10 lacks)."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'^{key} = (?:{{ text = )?"([^"]+)"', text, re.MULTILINE).group(1)


def test_license_is_bsd_3_clause_with_the_original_release_notice():
    text = (ROOT / "LICENSE").read_text()
    assert project("license") == "BSD-3-Clause"
    assert text.startswith("BSD 3-Clause License") and "Copyright (c) 2026, The pyi2i authors" in text
    assert "Neither the name of the copyright holder" in text  # the third clause
    assert "Copyright (c) 2017, Jun-Yan Zhu and Taesung Park" in text
    assert "Copyright (c) 2016, Phillip Isola and Jun-Yan Zhu" in text


def test_citation_cites_pyi2i_and_both_papers():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software" and cff["message"]
    assert cff["title"].startswith("pyi2i") and cff["authors"]
    assert cff["version"] == project("version") and cff["license"] == project("license")
    papers = {ref["title"]: ref for ref in cff["references"]}
    for title, authors, venue, doi in [
        ("Image-to-Image Translation with Conditional Adversarial Networks", ["Isola", "Zhu", "Zhou", "Efros"],
         "CVPR", "10.1109/CVPR.2017.632"),
        ("Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
         ["Zhu", "Park", "Isola", "Efros"], "ICCV", "10.1109/ICCV.2017.244"),
    ]:
        paper = papers[title]
        assert [a["family-names"] for a in paper["authors"]] == authors
        assert paper["type"] == "conference-paper" and paper["year"] == 2017
        assert venue in paper["collection-title"] and paper["doi"] == doi


@pytest.mark.skipif(shutil.which("cffconvert") is None, reason="cffconvert is not installed")
def test_citation_validates_against_the_cff_schema():
    r = subprocess.run(["cffconvert", "--validate", "-i", str(ROOT / "CITATION.cff")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
