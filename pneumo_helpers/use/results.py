"""``make results`` (``pneumo results DATA_DIR OUT_DIR``): the final notebook
run by papermill into a staging folder of ``OUT_DIR``, then its outputs, the
executed notebook and ``report.html`` moved into place together. A run that
fails or is interrupted leaves the earlier results as they were, and its
partial notebook as ``final_notebook.failed.ipynb``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .outputs import PROJECT_ROOT
from .runfolder import RunFolder

NOTEBOOK = PROJECT_ROOT / "final_notebook.ipynb"
FAILED = "final_notebook.failed.ipynb"
STAGING = ".staging-run-"  # + the process id: the folder the notebook runs into


def published_dir(output_dir) -> Path | None:
    """The folder a run's results land in when ``output_dir`` is the staging
    folder of :func:`make_results` (``OUT_DIR/.staging-run-<pid>``), else ``None``."""
    path = Path(output_dir)
    rest = path.name.removeprefix(STAGING)
    return path.parent if rest != path.name and rest.isdigit() else None


def make_results(data_dir, output_dir, parameters: dict | None = None,
                 progress: bool = True) -> Path:
    """Run the final notebook on ``data_dir`` into ``output_dir`` (see above);
    returns the folder. Raises ``RuntimeError`` with one line when the run fails."""
    import papermill as pm

    from .report import html_report

    run = RunFolder(output_dir, data_dir)
    for stale in run.path.glob(".staging-*"):  # of a killed run (this one holds the lock)
        shutil.rmtree(stale, ignore_errors=True)
    staging = run.path / f"{STAGING}{os.getpid()}"
    staging.mkdir()
    # papermill writes the notebook as it runs: beside the staging folder's
    # files, not among them (the notebook's own run folder checks those)
    (staging / ".papermill").mkdir()
    executed = staging / ".papermill" / "final_notebook.ipynb"
    try:
        try:
            pm.execute_notebook(str(NOTEBOOK), str(executed), cwd=str(PROJECT_ROOT),
                                parameters={"data_dir": str(data_dir),
                                            "output_dir": str(staging), **(parameters or {})},
                                progress_bar=progress)
        except (Exception, KeyboardInterrupt) as err:
            if executed.is_file():
                os.replace(executed, run.path / FAILED)
            reason = (f"{err.ename}: {err.evalue}" if isinstance(err, pm.PapermillExecutionError)
                      else type(err).__name__)
            raise RuntimeError(f"the run failed ({reason.strip().splitlines()[0][:300]}); the "
                               f"earlier results in {output_dir} are as they were, the partial "
                               f"notebook is {run.path / FAILED}") from None
        os.replace(executed, staging / "final_notebook.ipynb")
        html_report(staging / "final_notebook.ipynb", staging / "report.html",
                    title=f"pneumo run: {output_dir}")
        names = sorted(p.name for p in staging.iterdir() if p.is_file()
                       and not p.name.startswith(".") and p.name != "pneumo-run.json")
        run.publish(staging, names)
        (run.path / FAILED).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return run.path
