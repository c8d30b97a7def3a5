"""``pneumo``: the command line.

    pneumo check-data DATA_DIR              check a data folder, print its counts
    pneumo check-output OUT_DIR DATA_DIR [--create]
                                            refuse an output folder inside the data folder;
                                            print it resolved (and create it with --create)
    pneumo report NOTEBOOK HTML [--code]    an executed notebook as a self-contained HTML page

Every failure is one ``error:`` line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def html_report(notebook, html, with_code: bool = False) -> Path:
    """Write an executed notebook as one HTML file anyone can open in a
    browser: figures embedded, code cells shown only ``with_code``."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(exclude_input=not with_code, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    html = Path(html)
    html.write_text(body, encoding="utf-8")
    return html


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pneumo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check-data", help="check a data folder and print its counts")
    p.add_argument("data_dir")
    p = sub.add_parser("check-output", help="refuse an output folder inside the data folder; "
                       "print it resolved")
    p.add_argument("output_dir")
    p.add_argument("data_dir")
    p.add_argument("--create", action="store_true", help="create the folder once it is checked")
    p = sub.add_parser("report", help="an executed notebook as a self-contained HTML page")
    p.add_argument("notebook")
    p.add_argument("html")
    p.add_argument("--code", action="store_true", help="show the code cells too")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-data":
            from .data import main as check_data
            return check_data([args.data_dir])
        if args.command == "check-output":
            from .report import check_output_dir
            print(check_output_dir(args.output_dir, args.data_dir, create=args.create))
            return 0
        if args.command == "report":
            if not Path(args.notebook).is_file():
                raise ValueError(f"notebook not found: {args.notebook}")
            print(f"wrote {html_report(args.notebook, args.html, args.code)}")
            return 0
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
