"""nbgrader configuration for the dgm course (run nbgrader from this folder, or via `make`).

This file wires the whole grading path, so `nbgrader autograde` run here, the formgrader's
Autograde button and `dgm-grade` grade identically (docs/grading.md):

* GradingExecute runs the notebook: it plans the checks' cases (hidden seeds from an HMAC of the
  submission with the secret in .dgm_grading_secret), starts the kernel in the sandbox when there is
  one (else under resource limits), bounds cell and notebook time and survives dying kernels;
* Judge decides every declared test cell from the evidence the kernel displayed, in this process,
  and rewrites the cell's outputs to its verdict (what nbgrader then scores);
* SanitizeOutputs keeps only text and raster images in outputs; HTML rendering is sanitised too.
"""
import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearOutput,
                                    DeduplicateIds, GetGrades, IgnorePattern, LimitOutput, OverwriteKernelspec,
                                    SaveAutoGrades)

from dgm.grading.execute import GradingExecute, OutputCap, StderrNotFatal
from dgm.grading.judge import GradingRecord, Judge, SanitizeOutputs
from dgm.grading.restore import RestoreCells

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "dgm"
# The gradebook: any SQLAlchemy URL nbgrader supports (SQLite, PostgreSQL, ...). DGM_DB_URL sets it for
# nbgrader, the formgrader and dgm-grade alike (e.g. postgresql+psycopg2://grader@dbhost/dgm); dgm-grade
# --db-url overrides it. Never put it in a notebook: dgm-grade drops it from the workers' environment.
c.CourseDirectory.db_url = os.environ.get("DGM_DB_URL") or "sqlite:///gradebook.db"

# Student stubs: valid Python so Run-All works; markdown answers get a visible prompt.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograde: one pipeline for every way of grading. Order matters: the judge rewrites test cells
# before nbgrader scores them (SaveAutoGrades); GradingRecord runs after ClearMetadataPreprocessor.
c.Autograde.autograde_preprocessors = [
    GradingExecute, OutputCap, IgnorePattern, StderrNotFatal, Judge, SanitizeOutputs,
    ClearMetadataPreprocessor, GradingRecord, LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
]
# Run the whole notebook (training cells shrink to a tiny budget because nbgrader sets
# NBGRADER_EXECUTION); one slow or stuck cell must not stall a batch of 300 submissions.
c.GradingExecute.kernel_name = "python3"
c.GradingExecute.timeout = 300            # seconds per cell
c.GradingExecute.notebook_timeout = 1800  # seconds per notebook
c.GradingExecute.memory_mb = 4096         # the kernel's heap
c.GradingExecute.interrupt_on_timeout = True
c.GradingExecute.startup_timeout = 120
c.GradingExecute.iopub_timeout = 10
# HMAC key of the hidden cases' seeds (relative to the course root; created mode 600, git-ignored).
c.GradingExecute.secret_file = ".dgm_grading_secret"
# "auto": the bubblewrap sandbox when available, else resource limits only (reported as unsandboxed).
c.GradingExecute.sandbox = "auto"
c.OutputCap.limit = 200_000               # characters one cell may print

# Safety net: stderr from a Python warning ("file.py:12: UserWarning: ...") or a tqdm progress bar
# must not zero a test cell. Narrow on purpose: other stderr output stays visible.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\.py:\d+: \w*Warning:|(?:it/s|s/it)[\],]"

# A deleted or edited test cell is restored from the gradebook; a missing one is added back, even when
# its neighbours are gone too (RestoreCells: nbgrader's own repair fails the whole assignment then).
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec, RestoreCells,
                                      CheckCellMetadata]
c.RestoreCells.add_missing_cells = True

# Feedback must not leak hidden tests (nbgrader keeps them in the autograded notebook);
# limit runaway output (a 10 MB print).
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests]
c.ClearHiddenTests.enforce_metadata = False
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# The formgrader and the feedback render student outputs and markdown sanitised (no script, no
# event handlers); both use HTMLExporter-derived exporters with the classic templates, which honour it.
c.HTMLExporter.sanitize_html = True
