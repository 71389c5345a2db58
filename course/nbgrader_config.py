"""nbgrader configuration for the dgm course (run nbgrader from this folder, or via `make`)."""
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "dgm"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# Student stubs: valid Python so Run-All works; markdown answers get a visible prompt.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograde: run the whole notebook (training cells shrink to a tiny budget because nbgrader sets
# NBGRADER_EXECUTION); one slow or stuck cell must not stall a batch of 300 submissions.
c.Execute.kernel_name = "python3"
c.Execute.timeout = 300          # seconds per cell
c.Execute.interrupt_on_timeout = True
c.Execute.allow_errors = True
c.Execute.startup_timeout = 120

# Safety net: stderr from a Python warning ("file.py:12: UserWarning: ...") or a tqdm progress bar
# must not zero a test cell. Narrow on purpose: other stderr output stays visible.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\.py:\d+: \w*Warning:|(?:it/s|s/it)[\],]"

# A deleted or edited test cell is restored from the gradebook; a missing one is added back.
c.OverwriteCells.add_missing_cells = True

# Feedback must not leak hidden tests (nbgrader keeps them in the autograded notebook);
# limit runaway output (a 10 MB print).
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests]
c.ClearHiddenTests.enforce_metadata = False
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100
