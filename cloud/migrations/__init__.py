"""Alembic migrations of the cloud database (run by `kapok cloud serve`)."""
