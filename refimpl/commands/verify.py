"""``refimpl verify``: check the papers' claims numerically and print a table.

Runs the checks of :mod:`refimpl.verify` (which does the work and no I/O)
and prints one row per claim: claim | equations | check | measured error |
tolerance | result.  ``--json`` prints the rows as JSON instead.  A progress
bar goes to stderr when stderr is a terminal.  The exit status is 0 when
every claim passes, 1 otherwise.
"""
from __future__ import annotations

import json
import sys
import time

from tqdm import tqdm

from .. import verify


def _fmt(x) -> str:
    return "-" if x is None or x != x else f"{x:.2e}"


def format_table(results, verbose=False) -> str:
    """The report as a Markdown table (plus a detail line per claim if verbose)."""
    head = ("claim", "equations", "check", "measured error", "tolerance", "result")
    rows = [(r.name, r.equations, r.check, _fmt(r.error), _fmt(r.tolerance),
             "pass" if r.passed else "FAIL") for r in results]
    width = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    right = {3, 4}

    def line(cells):
        out = [str(c).rjust(w) if i in right else str(c).ljust(w)
               for i, (c, w) in enumerate(zip(cells, width))]
        return "| " + " | ".join(out) + " |"

    lines = [line(head), "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2)
                                         for i, w in enumerate(width)) + "|"]
    for r, cells in zip(results, rows):
        lines.append(line(cells))
        if verbose or not r.passed:
            lines.append(f"    {r.statement}; {r.detail} ({r.proof})")
    return "\n".join(lines)


def run(args) -> int:
    """Run the claims, print the table or JSON; 0 if all pass, else 1."""
    claims = verify.CLAIMS
    if args.claim:
        claims = tuple(c for c in claims if c.name in args.claim)
    t0 = time.perf_counter()
    results = []
    bar = tqdm(claims, desc="verify", unit="claim", file=sys.stderr, leave=False,
               disable=not sys.stderr.isatty())
    for claim in bar:
        bar.set_postfix_str(claim.name)
        results.append(verify.run_claim(claim))
    bar.close()
    seconds = time.perf_counter() - t0
    n_failed = sum(not r.passed for r in results)
    if args.json:
        report = {"passed": n_failed == 0, "n_claims": len(results), "n_failed": n_failed,
                  "seconds": seconds, "claims": [r.as_dict() for r in results]}
        print(json.dumps(report, indent=2, allow_nan=False))
    else:
        print(format_table(results, verbose=args.verbose))
        print(f"\n{len(results) - n_failed}/{len(results)} claims pass ({seconds:.1f} s); "
              "derivations in proofs/")
    return 0 if n_failed == 0 else 1


def register(subparsers, name, help_text):
    """Add the ``verify`` parser (called by :mod:`refimpl.cli`)."""
    p = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print each claim's statement, detail and proof file")
    p.add_argument("--claim", action="append", metavar="NAME",
                   choices=[c.name for c in verify.CLAIMS],
                   help="run only this claim (repeatable)")
    p.set_defaults(func=run)
    return p
