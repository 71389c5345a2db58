"""The class report (issue 16) in real Chromium: it renders offline from a file, its figures are drawn, and
the console stays clean (no errors, nothing blocked) although student strings hold script."""
from __future__ import annotations

from test_grading_report import GRADED, LAB, batch

from dgm.grading import report


def test_class_report_renders_without_console_errors(driver, tmp_path):
    from selenium.webdriver.common.by import By

    table, results = batch()
    path = report.write(tmp_path / f"{LAB}_report.html", LAB, GRADED, table, {}, results,
                        unmatched=["stray.ipynb: could not tell which student this is"], wall=10.0, n_graded=4,
                        workers=2)
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.as_uri())
    heads = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1, h2")]
    assert heads[0] == f"{LAB}: class report", heads
    assert any(h.startswith("Mistakes") for h in heads) and any(h.startswith("Not graded") for h in heads), heads
    svgs = driver.find_elements(By.CSS_SELECTOR, "svg")
    assert svgs and all(s.size["width"] > 50 and s.size["height"] > 20 for s in svgs), "figures are drawn"
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "wrong-reduction" in body and "<script>alert(1)</script>" in body, "student strings shown as text"
    assert driver.execute_script("return typeof window.alert_called") == "undefined"
    logs = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not logs, logs
