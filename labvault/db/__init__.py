"""The database: SQLAlchemy models of the platform and of its backups, the engine and sessions,
and the Alembic migrations that make the schema.

It holds rows and nothing else: it must never import `labvault.archive`, `labvault.storage`,
`labvault.zipstream` nor any operation of `labvault`.
"""
