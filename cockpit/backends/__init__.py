"""One module per real system, each behind a Protocol in base.py, with a twin in sim/."""
