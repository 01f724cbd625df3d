"""`oodmix-report DIR`: aggregate any multirun folder into table.md, table.csv and figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="oodmix-report",
        description="Group the jobs of a multirun folder by every swept key but the seed; "
        "write table.md, table.csv and figures into it and print the table.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a Hydra multirun folder (hydra.sweep.dir)")
    parser.add_argument(
        "--paper", action="store_true", help="add the comparison with the paper's Table 1"
    )
    parser.add_argument(
        "--columns",
        nargs="+",
        metavar="METRIC",
        help="metrics of the Markdown table, e.g. test/auroc test/fpr95 test/f1 "
        "(default: every test/* metric; table.csv always has them all)",
    )
    args = parser.parse_args(argv)
    from oodmix.reporting.report import build_report

    try:
        report = build_report(args.sweep_dir, paper=args.paper, columns=args.columns)
    except (FileNotFoundError, ValueError) as error:
        print(f"oodmix-report: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(report.table)
    for path in report.written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
