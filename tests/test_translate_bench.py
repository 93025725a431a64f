"""bench/translate.py runs end to end and reports its ratio to the original loop; its numbers are not checked."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "translate.py"


def test_translate_bench_prints_its_table_with_the_ratio(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH), "--quick", "--sizes", "64", "--images", "2", "--no-save"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    table = r.stdout[r.stdout.index("| size |"):]
    assert "| 64 | original loop (fp32, batch 1) | 2 |" in table and "| 1.00x |" in table
    for name in ("translate fp32", "Translator API fp32"):
        assert f"| 64 | {name} | 2 |" in table
    assert not list(tmp_path.iterdir())  # nothing left behind, nothing saved
