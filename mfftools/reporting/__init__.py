"""Results tables, plots and reports."""
