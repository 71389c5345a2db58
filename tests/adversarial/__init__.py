"""The adversarial grading suite: submissions as data (lab0N.py), the tampering variants (tamper.py) and
the driver that grades them through both paths (driver.py). Tests: tests/test_adversarial_lab0N.py."""
