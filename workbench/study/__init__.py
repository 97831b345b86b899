"""Scripted ablation studies: a TOML file in, one SQLite store (WAL) plus artifacts out,
resumable after a kill, with an HTML report.

    from workbench.study import load_study, run_study, Store, write_report
    study = load_study("default")            # or a path to a TOML file
    run = run_study(study, out="runs/default", executor="local")
    write_report(run.store_path)             # runs/default/report.html
"""
from .config import NONE, Cell, Study, StudyError, load_study, parse_study
from .report import (figure_agreement, figure_pareto, figure_study_relearning, figure_study_traces, study_agreement,
                     study_rows, write_report)
from .runner import EXECUTORS, StudyRun, default_out, plan, run_study
from .store import Store

__all__ = ["NONE", "Cell", "Study", "StudyError", "load_study", "parse_study", "EXECUTORS", "StudyRun",
           "default_out", "plan", "run_study", "Store", "write_report", "study_rows", "figure_pareto",
           "figure_study_relearning", "figure_study_traces", "figure_agreement", "study_agreement"]
