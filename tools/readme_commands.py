#!/usr/bin/env python3
"""README's two commands, as `.ci/run` runs them, and the verdict on the audit's report.

README.md marks each command with an HTML comment, ``<!-- ci: audit -->`` or
``<!-- ci: tests -->``, right before its ``sh`` block. `.ci/run` takes the command from
there, so what a new user pastes is what CI runs, and the two cannot drift apart::

    python3 tools/readme_commands.py show audit
    python3 tools/readme_commands.py verify-audit audit.json   # with the package importable

``verify-audit`` holds the audit of a throwaway database to what README promises: every
built-in check of the default audit ran and passed, but ``indexes.unused`` (skipped
while statistics are seconds old). Standard library only until it counts the checks.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
#: the checks a healthy throwaway database does not pass, and the outcome each gets
EXPECTED_NOT_PASSED = {"indexes.unused": "skipped"}


def command(name: str, text: str | None = None) -> str:
    """The command of the ``sh`` block marked ``<!-- ci: name -->`` in README.md."""
    text = README.read_text() if text is None else text
    mark = re.escape(f"<!-- ci: {name} -->")
    found = re.findall(mark + r"\s*```sh\n(.*?)\n```", text, re.S)
    if len(found) != 1:
        raise ValueError(f"README.md must mark exactly one sh block <!-- ci: {name} --> "
                         f"(found {len(found)})")
    return found[0].strip()


def audit_problems(document: dict, default_checks: set[str]) -> list[str]:
    """Why the audit's JSON report is not README's healthy throwaway database (empty when
    it is): a default check missing, or an outcome other than promised."""
    seen = {c["id"]: c for c in document.get("checks", [])}
    problems = [f"{check}: not run" for check in sorted(default_checks - set(seen))]
    for check_id, check in sorted(seen.items()):
        want = EXPECTED_NOT_PASSED.get(check_id, "passed")
        if check["outcome"] != want:
            problems.append(f"{check_id}: {check['outcome']}, expected {want}: "
                            f"{check.get('message', '')}")
    return problems


def _default_checks() -> set[str]:
    from pytest_mlflowdb.config.areas import builtin_check_ids
    from pytest_mlflowdb.config.registry import REGISTRY

    return {i for i in builtin_check_ids() if not REGISTRY[i].enabled_by}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "show":
        print(command(argv[1]))
        return 0
    if len(argv) == 2 and argv[0] == "verify-audit":
        document = json.loads(Path(argv[1]).read_text())
        problems = audit_problems(document, _default_checks())
        for problem in problems:
            print(f"README's audit: {problem}", file=sys.stderr)
        if not problems:
            print(f"README's audit: {len(document['checks'])} checks, all as README promises")
        return 1 if problems else 0
    print("usage: readme_commands.py show audit|tests | verify-audit REPORT.json",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError) as exc:
        print(f"readme_commands.py: {exc}", file=sys.stderr)
        sys.exit(2)
