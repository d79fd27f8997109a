"""Reusable widgets: the live table, sparkline text, the status header, the filter bar."""
