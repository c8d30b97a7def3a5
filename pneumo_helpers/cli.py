"""pneumo: score chest X-rays with a saved model, check data folders, run and report the final notebook.

    pneumo predict MODEL PATH... [--out predictions.csv] [--heatmaps DIR] [--report DIR]
                                            score X-rays (files or folders; JPEG, PNG, DICOM)
    pneumo check-data DATA_DIR              check a data folder, print its counts
    pneumo check-output OUT_DIR DATA_DIR [--create]
                                            check an output folder (never inside the data
                                            folder); print it resolved (create it with --create)
    pneumo results DATA_DIR OUT_DIR [-p NAME VALUE]...
                                            run the final notebook (make results)
    pneumo report NOTEBOOK HTML [--code]    an executed notebook as a self-contained HTML page

Every failure is one "error:" line on stderr and a non-zero exit status. Importing
this module does not import TensorFlow: --help and --version answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def predict(args) -> int:
    from .use import modelfile, site
    from .use.outputs import check_output_folder, check_outputs
    from .use.scoring import (find_images, heatmap_name, is_heatmap, is_predictions_csv,
                              score_images, write_csv, write_heatmaps)

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not any(Path(p).exists() for p in args.paths):  # a typo: nothing to score, nothing written
        raise ValueError(f"no such file or folder: {' '.join(map(str, args.paths))}")
    # every output checked against every input before any work
    check_outputs({"--out": args.out}, args.paths, args.model,
                  is_ours=lambda label, path: is_predictions_csv(path))
    outputs, kinds = {"--out": args.out}, {"--out": is_predictions_csv}
    if args.heatmaps:
        folder = check_output_folder("--heatmaps", args.heatmaps, args.paths, args.model)
        for f in find_images(args.paths):
            outputs[f"heat map of {f.path}"] = folder / heatmap_name(f)
            kinds[f"heat map of {f.path}"] = is_heatmap
    if args.report:
        folder = check_output_folder("--report", args.report, args.paths, args.model)
        outputs["--report page"] = folder / site.REPORT_NAME
        kinds["--report page"] = site.is_report
    if len(outputs) > 1:
        check_outputs(outputs, args.paths, args.model,
                      is_ours=lambda label, path: kinds[label](path))
    saved = modelfile.load(args.model)
    progress = not args.no_progress and sys.stderr.isatty()
    rows = score_images(saved, args.paths, args.batch_size, progress=progress,
                        rescale=args.rescale)
    if not rows:
        raise ValueError(f"no images found in {' '.join(map(str, args.paths))}")
    scored = [r for r in rows if r["status"] == "scored"]
    prevalence = site_prevalence(rows, saved) if args.site_prevalence else None
    if args.heatmaps:
        write_heatmaps(saved, rows, args.heatmaps, args.batch_size, progress=progress)
    out = write_csv(rows, args.out, saved.class_names)
    for r in rows:
        if r["status"] == "error":
            print(f"error: {r['path']}: {r['reason']}", file=sys.stderr)
        elif r["status"] == "out_of_distribution":
            print(f"refused: {r['path']}: {r['reason']}", file=sys.stderr)
    summary = site.shift_summary(rows, saved)
    if summary["verdict"] is not None:  # a folder large enough to say something of
        print(f"this folder against the training data: {summary['text']}", file=sys.stderr)
    page = site.write_report(rows, saved, args.report, summary, prevalence) \
        if args.report else None
    flagged = sum(r["decision"] == "pneumonia" for r in scored)
    refused = sum(r["status"] == "out_of_distribution" for r in rows)
    errors = sum(r["status"] == "error" for r in rows)
    notes = "" if summary["verdict"] is not None else f" {summary['text']}"
    print(f"scored {len(scored)} of {len(rows)} images ({flagged} flagged as pneumonia at "
          f"threshold {saved.threshold:.3f}; {refused} refused as out of distribution, {errors} "
          f"unreadable); wrote {out}{f' and {page}' if page else ''}.{notes}")
    return 0 if len(scored) == len(rows) else 1


MIN_SITE_IMAGES = 30  # fewer scored images: no estimate of the site's prevalence


def site_prevalence(rows: list[dict], saved) -> str | None:
    """The share of pneumonia among the scored images, estimated from the
    scores alone (EM, Saerens et al. 2002), with a 95% bootstrap interval over
    images and, when the model file carries it, the error that estimate
    showed on validation patients resampled to other prevalences
    (``site.check_prevalence_estimate``); refused, with one line, for fewer
    than :data:`MIN_SITE_IMAGES` images. Each image's score re-weighted to
    the estimate (``pneumonia_score_at_site_prevalence``) is added only when
    that measurement found that re-weighting lowers the Brier score at every
    prevalence tried; otherwise the estimate is reported for what it is.
    Returns the line printed (or ``None``)."""
    import numpy as np

    from .metrics import adjust_to_prior, estimate_prior
    from .use.site import measured_error_phrase

    scored = [r for r in rows if r["status"] == "scored"]
    if len(scored) < MIN_SITE_IMAGES:
        print(f"note: --site-prevalence needs at least {MIN_SITE_IMAGES} scored images "
              f"(got {len(scored)}): no estimate", file=sys.stderr)
        return None
    p = np.array([r["pneumonia_score"] for r in scored], dtype=float)
    prior0 = saved.info.get("train_prior", 0.5)
    prior, adjusted = estimate_prior(p, prior0)
    rng = np.random.default_rng(0)
    boot = [estimate_prior(p[rng.integers(0, len(p), len(p))], prior0)[0] for _ in range(200)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    reference = saved.info.get("reference") or {}
    measured = measured_error_phrase(reference)
    helps = (reference.get("prevalence") or {}).get("verdict") == "helps"
    if helps:
        for r, a in zip(scored, adjust_to_prior(p, prior, prior0)):
            r["pneumonia_score_at_site_prevalence"] = float(f"{a:.3g}")
    line = (f"estimated share of pneumonia among these {len(scored)} images: {prior:.2f} "
            f"(95% interval {lo:.2f}-{hi:.2f} over these images; an estimate from the scores "
            "alone, which assumes that only the share of pneumonia differs from the training "
            "data, not how the images look; "
            + (f"{measured}" if measured else "its error was not measured for this model file")
            + ("; scores re-weighted to it in pneumonia_score_at_site_prevalence" if helps else
               "; no re-weighted scores") + "; decisions stay at the model's threshold)")
    print(line, file=sys.stderr)
    return line


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="pneumo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"pneumo {__version__}")
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
        "one CSV row per image with its status (scored; out_of_distribution: not like the "
        "training X-rays, or a lateral DICOM view or another modality; error: unreadable, over "
        "50 megapixels, under 64 pixels a side or without contrast) and the reason, its "
        "pneumonia score (a ranking, not a calibrated probability), the decision at the "
        "threshold saved with the model (scored images only: an out-of-distribution image "
        "keeps its score, for the record, but gets no decision), the spread of the seeds' "
        "scores, the feature distance from the training images, and the threshold and model. "
        "Every image is checked before its score is trusted: colour, texture, contrast, "
        "lung fields found by the lung-field model, and, with a model file that carries a "
        "reference of its training images, the distance of its network features from theirs "
        "(and whether it looks upside down or like a negative). After scoring, a summary on "
        "stderr compares the folder with the training images (framing, exposure, features) "
        "and says what that is expected to do to the operating point (from 30 scored images "
        "on). Exit status 0 only when every image was scored.")
    p.add_argument("model", help="a model.keras written by the final notebook")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files (JPEG, PNG, or DICOM with pydicom installed: .jpeg, .jpg, "
                   ".png, .dcm) or folders, searched recursively (hidden and system files "
                   "skipped)")
    p.add_argument("--out", default="predictions.csv",
                   help="the CSV to write (default: predictions.csv in the current folder); "
                   "never inside a folder being scored")
    p.add_argument("--heatmaps", metavar="DIR",
                   help="also write one PNG per image, named from its path below what was "
                   "given (x.jpeg -> DIR/x.jpeg.png): the X-ray at its own aspect ratio with its "
                   "Grad-CAM overlay, score and decision; the CSV names each row's file")
    p.add_argument("--report", metavar="DIR",
                   help="also write DIR/report.html, one self-contained page for the folder: "
                   "counts (scored, refused, unreadable, flagged), the score histogram against "
                   "validation's, the comparison with the training images, the most and least "
                   "confident images with their heat maps, and the refused files and why")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--rescale", action="store_true",
                   help="add score_at_0.5: the score mapped piecewise linearly so that the "
                   "model's threshold is 0.5 (torchxrayvision's convention; still a ranking, "
                   "not a probability; scored images only)")
    p.add_argument("--site-prevalence", action="store_true",
                   help="estimate the share of pneumonia among the scored images from their "
                   "scores alone (EM, Saerens et al. 2002), with a bootstrap interval: an "
                   "estimate, printed with the error it showed on validation patients "
                   "resampled to prevalences 0.2-0.8 (carried by the model file); it assumes "
                   "the images look like the training ones. Each image's re-weighted score is "
                   "added only when that measurement found re-weighting to lower the Brier "
                   "score at every prevalence; decisions stay at the model's threshold; needs "
                   "at least 30 scored images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("report", help="an executed notebook as a self-contained HTML page")
    p.add_argument("notebook")
    p.add_argument("html")
    p.add_argument("--code", action="store_true", help="show the code cells too")
    p = sub.add_parser(
        "results", help="run the final notebook into OUT_DIR (make results)",
        description="Run final_notebook.ipynb with papermill on DATA_DIR into OUT_DIR: the "
        "results appear in OUT_DIR only once the run has finished; a failed run leaves the "
        "earlier ones as they were and its partial notebook as final_notebook.failed.ipynb.")
    p.add_argument("data_dir")
    p.add_argument("output_dir")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="a notebook parameter (as papermill's -p)")
    return parser


def results(args) -> int:
    import ast

    from .data.table import main as check_data
    from .use.results import make_results

    if check_data([args.data_dir]) != 0:
        return 1
    params = {}
    for name, value in args.parameter:
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value  # a string
    out = make_results(args.data_dir, args.output_dir, params, progress=sys.stderr.isatty())
    print(f"Results in {out}: report.html, metrics.json, MODEL_CARD.md, model.keras, figures, "
          "the executed notebook")
    return 0


def report(args) -> int:
    from .use.outputs import check_outputs
    from .use.report import html_report, is_html_report

    if not Path(args.notebook).is_file():
        raise ValueError(f"notebook not found: {args.notebook}")
    check_outputs({"html": args.html}, [args.notebook],
                  is_ours=lambda label, path: is_html_report(path))
    print(f"wrote {html_report(args.notebook, args.html, args.code)}")
    return 0


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
            return report(args)
        if args.command == "results":
            return results(args)
    except (ValueError, OSError, RuntimeError) as err:  # the package's errors are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
