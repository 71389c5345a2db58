"""Adversarial grading of lab 3 through nbgrader autograde and dgm-grade (see tests/adversarial/driver.py)."""
from adversarial.driver import suite

globals().update(suite("03_gan"))
