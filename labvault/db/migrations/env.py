"""Alembic environment: the URL comes from `labvault.db.engine.alembic_config`, not an ini file."""

from alembic import context

from labvault.db.engine import engine_for
from labvault.db.models import Base

config = context.config
url = config.attributes["database_url"]

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with engine_for(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
