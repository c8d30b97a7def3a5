"""``pneumo``: the command line.

    pneumo check-data DATA_DIR              check a data folder, print its counts
    pneumo check-output OUT_DIR DATA_DIR [--create]
                                            refuse an output folder inside the data folder;
                                            print it resolved (and create it with --create)
    pneumo report NOTEBOOK HTML [--code]    an executed notebook as a self-contained HTML page
    pneumo predict MODEL PATH... [--out predictions.csv] [--heatmaps DIR]
                                            score X-rays (files or folders; JPEG, PNG, DICOM)

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


def predict(args) -> int:
    from .use import modelfile
    from .use.scoring import (
        check_outputs_outside_inputs,
        score_images,
        write_csv,
        write_heatmaps,
    )

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_outputs_outside_inputs([args.out, args.heatmaps], args.paths)
    saved = modelfile.load(args.model)
    rows = score_images(saved, args.paths, args.batch_size,
                        progress=not args.no_progress and sys.stderr.isatty())
    if not rows:
        raise ValueError(f"no images found in {' '.join(args.paths)}")
    scored = [r for r in rows if not r["error"]]
    if args.site_prevalence and scored:
        import numpy as np

        from .metrics import estimate_prior
        prior, adjusted = estimate_prior(np.array([r["pneumonia_probability"] for r in scored]),
                                         saved.info.get("train_prior", 0.5))
        for r, a in zip(scored, adjusted):
            r["pneumonia_probability_at_site_prevalence"] = float(a)
        for r in rows:
            r.setdefault("pneumonia_probability_at_site_prevalence", "")
        print(f"estimated share of pneumonia among these images: {prior:.3f}", file=sys.stderr)
    out = write_csv(rows, args.out, saved.class_names)
    for r in rows:
        if r["error"]:
            print(f"error: {r['path']}: {r['error']}", file=sys.stderr)
    if args.heatmaps:
        write_heatmaps(saved, rows, args.heatmaps)
    flagged = sum(r["decision"] == "pneumonia" for r in scored)
    print(f"scored {len(scored)} of {len(rows)} images ({flagged} flagged as pneumonia at "
          f"threshold {saved.threshold:.3f}); wrote {out}")
    return 0 if len(scored) == len(rows) else 1


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
    p = sub.add_parser(
        "predict", help="score chest X-rays with a saved model",
        description="Score chest X-rays with a model saved by the final notebook (model.keras): "
        "one CSV row per image with its pneumonia probability and the decision at the "
        "threshold saved with the model. Exit status 0 only when every image was scored.")
    p.add_argument("model", help="a model.keras written by the final notebook")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files (JPEG, PNG, or DICOM with pydicom installed: .jpeg, .jpg, "
                   ".png, .dcm) or folders, searched recursively (hidden and system files "
                   "skipped)")
    p.add_argument("--out", default="predictions.csv",
                   help="the CSV to write (default: predictions.csv in the current folder); "
                   "never inside a folder being scored")
    p.add_argument("--heatmaps", metavar="DIR",
                   help="also write one PNG per image: the X-ray with its Grad-CAM overlay, "
                   "score and decision")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--site-prevalence", action="store_true",
                   help="estimate the share of pneumonia among these images from the scores "
                   "alone (EM, Saerens et al. 2002) and add each image's probability at that "
                   "prevalence; decisions stay at the model's threshold")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("report", help="an executed notebook as a self-contained HTML page")
    p.add_argument("notebook")
    p.add_argument("html")
    p.add_argument("--code", action="store_true", help="show the code cells too")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-data":
            from .data.table import main as check_data
            return check_data([args.data_dir])
        if args.command == "check-output":
            from .use.runfolder import check_output_dir
            print(check_output_dir(args.output_dir, args.data_dir, create=args.create))
            return 0
        if args.command == "predict":
            return predict(args)
        if args.command == "report":
            if not Path(args.notebook).is_file():
                raise ValueError(f"notebook not found: {args.notebook}")
            print(f"wrote {html_report(args.notebook, args.html, args.code)}")
            return 0
    except (ValueError, OSError) as err:  # DataError and ModelFileError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
