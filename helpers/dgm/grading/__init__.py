r"""Batch autograding for the dgm course (the ``dgm-grade`` command, :mod:`dgm.grade`).

collect (folder / LMS zip → student ids, pre-validation) → N worker processes, each grading in a
scratch copy of the course (:mod:`.worker`, :mod:`.execute`, limited kernel :mod:`.kernel`, in-kernel
:mod:`.guard`) → grades imported serially into the one gradebook (:mod:`.book`) → CSV, histograms,
feedback. See docs/grading.md.
"""
