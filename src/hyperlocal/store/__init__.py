"""Persistence: SQLAlchemy tables, query functions that take a session and never commit,
and Alembic migrations. ``core`` owns every transaction."""
