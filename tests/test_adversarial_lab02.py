"""Adversarial grading of lab 2 through nbgrader autograde and dgm-grade (see tests/adversarial/driver.py)."""
from adversarial.driver import suite

globals().update(suite("02_vae"))
