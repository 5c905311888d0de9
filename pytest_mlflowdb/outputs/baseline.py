"""What changed since a baseline (``--mlflowdb-baseline``): an earlier JSON report
compared with this run's document, check by check and finding by finding.

The comparison is the document's ``baseline`` block, which every output shows. A
baseline that cannot be compared (unreadable, not a report, another target, another
plugin version) is one line in that block, never a crash and never a false "all new":
nothing is compared then, and ``--mlflowdb-fail-on=regression`` fails the run as
``error`` would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: ``--mlflowdb-baseline=history``: the newest report kept in ``--mlflowdb-history``
FROM_HISTORY = "history"
#: how bad an outcome is, to tell worse from better (a skip is neither: it did not look)
RANK = {"passed": 0, "warned": 1, "failed": 2, "error": 2}
PROBLEMS = ("warning", "failure")
SEVERITY_RANK = {"warning": 1, "failure": 2}
#: bytes of a baseline file read at most (a fleet's report is a few MiB)
MAX_BYTES = 64 * 2**20


def baseline_path(given: str, history: str | None) -> tuple[Path | None, str | None]:
    """The file ``given`` names (a report; a folder: its newest kept report; ``history``:
    the newest in the history folder), or why there is none."""
    if given == FROM_HISTORY:
        if not history:
            return None, "--mlflowdb-baseline=history needs --mlflowdb-history"
        given = history
    path = Path(given).expanduser()
    if path.is_dir():
        from pytest_mlflowdb.size.forecast import PREFIX

        kept = sorted(p for p in path.glob(f"{PREFIX}*.json") if p.is_file())
        if not kept:
            return None, f"no kept report in {path}"
        return kept[-1], None
    return path, None


def load_baseline(given: str, history: str | None) -> tuple[dict[str, Any] | None, str]:
    """(the baseline document, where it came from) or (None, why it cannot be read)."""
    path, why = baseline_path(given, history)
    if path is None:
        return None, f"no baseline: {why}"
    try:
        if path.stat().st_size > MAX_BYTES:
            return None, f"baseline {path} is larger than {MAX_BYTES // 2**20} MiB: not compared"
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return None, (f"baseline {path} is unreadable "
                      f"({getattr(exc, 'strerror', None) or exc}): not compared")
    except ValueError:
        return None, f"baseline {path} is not JSON: not compared"
    if not (isinstance(document, dict) and document.get("version") == 1
            and isinstance(document.get("checks"), list)
            and isinstance(document.get("targets"), list)):
        return None, f"baseline {path} is not a pytest-mlflowdb JSON report: not compared"
    return document, str(path)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _shown(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:.4g}"


def _problems(check: dict[str, Any]) -> dict[str, str]:
    return {str(f.get("object")): str(f.get("severity")) for f in check.get("findings") or ()
            if f.get("severity") in PROBLEMS}


def _moves(before: dict[str, Any], after: dict[str, Any], share: float) -> list[str]:
    """Findings whose number moved by more than ``share`` of what it was."""
    earlier = {str(f.get("object")): _number(f.get("value"))
               for f in before.get("findings") or ()}
    moved = []
    for finding in after.get("findings") or ():
        obj = str(finding.get("object"))
        then, now = earlier.get(obj), _number(finding.get("value"))
        if then is None or now is None or then == 0:
            continue
        change = (now - then) / abs(then)
        if abs(change) > share:
            moved.append(f"{obj}: {_shown(then)} -> {_shown(now)} ({change:+.0%})")
    return moved


def _compare_check(before: dict[str, Any] | None, after: dict[str, Any],
                   share: float) -> dict[str, Any] | None:
    """One check's change, or None when nothing moved."""
    outcome = after["outcome"]
    base = {"target": after.get("target"), "id": after["id"], "after": outcome}
    if before is None:
        if outcome in ("passed", "skipped"):
            return None  # a check the baseline did not run, with nothing to say
        return dict(base, change="new", before=None, regression=True,
                    details=[f"{o}: {s}" for o, s in _problems(after).items()])
    was = before["outcome"]
    then, now = _problems(before), _problems(after)
    appeared = [f"new {s}: {o}" for o, s in now.items()
                if SEVERITY_RANK[s] > SEVERITY_RANK.get(then.get(o, ""), 0)]
    gone = [f"no longer a {s}: {o}" for o, s in then.items() if o not in now]
    details = appeared + gone + _moves(before, after, share)
    if "skipped" in (was, outcome):
        change = "skipped" if outcome == "skipped" else "looked again"
        if was == outcome and not details:
            return None
        return dict(base, change=change if was != outcome else "moved", before=was,
                    regression=False, details=details)
    if RANK.get(outcome, 0) > RANK.get(was, 0) or appeared:
        change = "worse"
    elif RANK.get(outcome, 0) < RANK.get(was, 0):
        change = "resolved" if outcome == "passed" else "better"
    elif gone:
        change = "better"
    elif details:
        change = "moved"
    else:
        return None
    return dict(base, change=change, before=was, regression=change == "worse",
                details=details)


def compare(baseline: dict[str, Any], document: dict[str, Any], source: str,
            share: float) -> dict[str, Any]:
    """The ``baseline`` block: each check new, worse, better, resolved or moved since
    ``baseline``; or a ``message`` saying why it is not compared."""
    from pytest_mlflowdb import __version__

    block: dict[str, Any] = {"path": source, "share": share}
    theirs = (baseline.get("run") or {}).get("plugin_version")
    if theirs != __version__:
        block["message"] = (f"baseline {source} was written by pytest-mlflowdb "
                            f"{theirs or 'of an earlier version'}, this is {__version__}: "
                            "not compared (check ids and findings may differ)")
        return block
    old_targets = [str(t.get("id")) for t in baseline["targets"] if isinstance(t, dict)]
    new_targets = [str(t["id"]) for t in document["targets"]]
    common = [t for t in new_targets if t in old_targets]
    if not common:
        block["message"] = (f"baseline {source} holds {_names(old_targets)}, this run "
                            f"audits {_names(new_targets)}: not compared")
        return block
    earlier = {(c.get("target"), c.get("id")): c for c in baseline["checks"]
               if isinstance(c, dict)}
    changes = []
    for check in document["checks"]:
        if check.get("target") not in common:
            continue
        change = _compare_check(earlier.get((check.get("target"), check["id"])), check,
                                share)
        if change is not None:
            changes.append(change)
    changes.sort(key=lambda c: (not c["regression"], c["target"] or "", c["id"]))
    counts: dict[str, int] = {}
    for change in changes:
        counts[change["change"]] = counts.get(change["change"], 0) + 1
    block.update(saved_at=baseline.get("saved_at") or (baseline.get("run") or {}).get(
        "end_time"), changes=changes, regressions=sum(c["regression"] for c in changes))
    summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no check changed"
    missing = [t for t in new_targets if t not in common]
    if missing:
        summary += f"; not in the baseline, not compared: {_names(missing)}"
    block["summary"] = f"since {source}: {summary}"
    return block


def _names(targets: list[str]) -> str:
    shown = ", ".join(targets[:3]) or "no target"
    return shown + (f" and {len(targets) - 3} more" if len(targets) > 3 else "")


def apply_baseline(document: dict[str, Any], settings: Any, loaded: tuple[
        dict[str, Any] | None, str] | None) -> None:
    """Add the ``baseline`` block to ``document``; with ``--mlflowdb-fail-on=regression``
    ``run.failing`` counts what got worse (or, not compared, what ``error`` counts)."""
    if loaded is None:
        return
    baseline, source = loaded
    if baseline is None:
        block: dict[str, Any] = {"message": source}
    else:
        block = compare(baseline, document, source, settings.baseline_share)
    if settings.fail_on == "regression":
        if "message" in block:
            block["message"] += "; --mlflowdb-fail-on=regression fails on every failed check"
        else:
            document["run"]["failing"] = block["regressions"]
    document["baseline"] = block


def baseline_lines(block: dict[str, Any] | None, limit: int = 20,
                   gate: bool = False) -> list[str]:
    """The block as text lines for the terminal, regressions first; ``gate``: the run
    fails on regressions only, which a line says."""
    if not block:
        return []
    if "message" in block:
        return [f"mlflowdb baseline: {block['message']}"]
    lines = [f"mlflowdb baseline: {block['summary']}"]
    if gate:
        lines.append(f"mlflowdb: {block['regressions']} regression(s) since the baseline fail "
                     "this run (--mlflowdb-fail-on=regression; checks that failed there "
                     "too do not)")
    for change in block["changes"][:limit]:
        moved = f": {'; '.join(change['details'][:4])}" if change["details"] else ""
        lines.append(f"  {change['change'].upper()} {change['id']} [{change['target']}] "
                     f"{change['before'] or '-'} -> {change['after']}{moved}")
    more = len(block["changes"]) - limit
    if more > 0:
        lines.append(f"  and {more} more change(s) in the JSON or HTML report")
    return lines


def exit_status(document: dict[str, Any], tests_failed: int, status: int) -> int:
    """The run's exit status with ``--mlflowdb-fail-on=regression``: 1 when something got
    worse; 0 when the only failed tests are checks that failed in the baseline too; as
    it was when the baseline was not compared (as ``error`` would) or other tests failed."""
    block = document.get("baseline") or {}
    if "changes" not in block:
        return status
    if block["regressions"]:
        return status or 1
    failing = document["summary"].get("failed", 0) + document["summary"].get("error", 0)
    if status == 1 and tests_failed <= failing:
        return 0
    return status
