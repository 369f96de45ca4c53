"""Persistence: SQLAlchemy models, the engine with its privacy pragmas, Alembic migrations.

The only package that speaks SQL. What it stores is the privacy contract of SECURITY.md:
no identifier, no contact in clear, no address, no agent, no per-signature time and no
arrival order (no autoincrement ids; rows keyed by random or derived values).
"""
