"""Compute: the Nova semantics (manager, scheduler) over a ComputeDriver (driver.py)."""
