"""The database: connection settings for SQLite and PostgreSQL, durability, the write
transactions, the tables (models), and the vault that seals secrets in them.

Anything may import storage; storage imports only the protocol layer (koo) and the extensions.
The Alembic migrations live here too (migrations/); `init-db` and `flask db` find them through
db.MIGRATIONS, so no deployed command names the folder.
"""
