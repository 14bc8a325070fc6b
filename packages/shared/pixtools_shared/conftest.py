from pixtools_shared.pytest_fixtures import (
    configured_env,
    database_url,
    db_session,
    postgres_database_url,
)

__all__ = ["configured_env", "database_url", "db_session", "postgres_database_url"]
