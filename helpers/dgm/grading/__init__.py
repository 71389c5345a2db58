r"""Batch autograding for the dgm course (the ``dgm-grade`` command, :mod:`dgm.grade`).

collect (folder / LMS zip → student ids, pre-validation) → N worker processes, each grading in a
scratch copy of the course with the course's own nbgrader config (:mod:`.worker`): the kernel runs
in the sandbox (:mod:`.sandbox`) or under limits (:mod:`.kernel`) and only displays evidence
(:mod:`.execute`); the grader judges it (:mod:`.judge`) → typed results (:mod:`.result`) imported
serially into the one gradebook (:mod:`.book`) → CSV, histograms, feedback. See docs/grading.md.
"""
