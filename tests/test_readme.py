"""The README's Python blocks run as written (issue 15: a newcomer copies them).

Each ```python block is executed in a fresh namespace, in the order of the
README; a block that raises fails the test and names its first line.
"""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


def test_readme_has_python_blocks():
    assert BLOCKS, "README.md has no ```python block (the regex or the README changed)"


@pytest.mark.parametrize("code", BLOCKS, ids=[b.splitlines()[0][:40] for b in BLOCKS])
def test_readme_python_block_runs(code):
    pytest.importorskip("sklearn")  # the scikit-learn interface block needs the 'data' extra
    namespace = {"__name__": "__readme__"}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
