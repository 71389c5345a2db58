"""Adversarial grading of lab 4 through nbgrader autograde and dgm-grade (see tests/adversarial/driver.py)."""
from adversarial.driver import suite

globals().update(suite("04_ddpm"))
