"""Run reports: one self-contained HTML page per run folder (and a side-by-side page for several runs).

    zoo report runs/quickstart-finetune                      # -> runs/quickstart-finetune/report.html
    zoo report runs/quickstart-* -o compare.html
    zoo.report.write_report(["runs/a", "runs/b"], "compare.html")

``zoo train`` writes ``report.html`` into every run folder and ``<name>-comparison.html`` beside the runs of a
multi-variant recipe.
"""

from zoo.report.render import REPORT_NAME, render, run_context, write_report
from zoo.report.run import RunData, most_confused, per_class, read_run

__all__ = ["REPORT_NAME", "RunData", "most_confused", "per_class", "read_run", "render", "run_context", "write_report"]
