"""The README's five-line notebook script, run as it is written there."""

import contextlib
import io
import os
import re

from conftest import ROOT


def five_line_script():
    text = (ROOT / "README.md").read_text()
    marker = text.index("<!-- the five-line script: run by python/tests/test_readme.py -->")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert block, "no ```python block after the marker"
    return block.group(1)


def test_the_five_line_script_runs():
    code = five_line_script()
    assert len(code.strip().splitlines()) == 5, code
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    m = re.fullmatch(r"int8 top-1: ([\d.]+)%, (\d+) bytes, arena (\d+) bytes\n", out.getvalue())
    assert m, out.getvalue()
    assert float(m.group(1)) > 85, out.getvalue()
    assert int(m.group(2)) > 1000 and int(m.group(3)) > 1000
