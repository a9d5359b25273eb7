"""The extension's JSON-RPC error codes are freight.rpc's: ``CODES`` in extension/js/rpc.js,
imported under node, names each code as ``freight.rpc.CODES`` does and gives it the same
number; and no other script writes a code as a literal number."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from freight import rpc
from nodejs import node_binary

JS = Path(__file__).resolve().parents[2] / "extension" / "js"
#: A JSON-RPC error code written as a number: -32768..-32000.
CODE_LITERAL = re.compile(r"-\s*32[0-7]\d\d\b")


def _js_codes() -> dict[str, object]:
    script = (
        f"import * as rpc from {json.dumps((JS / 'rpc.js').as_uri())};\n"
        "const named = Object.fromEntries(Object.entries(rpc)"
        ".filter(([k, v]) => typeof v === 'number'));\n"
        "console.log(JSON.stringify({ codes: rpc.CODES, named }));\n"
    )
    proc = subprocess.run([node_binary(), "--input-type=module", "-e", script], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def test_every_js_code_is_the_daemons() -> None:
    found = _js_codes()
    codes = found["codes"]
    assert isinstance(codes, dict) and codes, "rpc.js exports no CODES"
    for name, value in codes.items():
        assert name in rpc.CODES, f"rpc.js names {name}, which freight.rpc.CODES does not"
        assert value == rpc.CODES[name], (name, value, rpc.CODES[name])
    # The constants rpc.js exports one by one are the same entries of CODES.
    named = found["named"]
    assert isinstance(named, dict)
    for name, value in named.items():
        assert codes.get(name) == value, (name, value)


def test_no_script_writes_a_code_as_a_number() -> None:
    offenders = []
    for path in sorted(JS.glob("*.js")):
        text = path.read_text(encoding="utf-8")
        if path.name == "rpc.js":  # only inside its CODES object
            start = text.index("export const CODES")
            text = text[:start] + text[text.index("});", start):]
        offenders += [f"{path.name}: {m.group(0)}" for m in CODE_LITERAL.finditer(text)]
    assert not offenders, offenders
