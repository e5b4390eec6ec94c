"""The database, a module per concern:

    connections   how SQLite and PostgreSQL connections are set up (WAL, FULL, IMMEDIATE, timeouts)
    transactions  the write transactions: on the ORM session, and the lean one of the hot path
    statements    statements built once: insert-ignore, pre-bound statements, bulk upserts
    schema        init-db and the Alembic migrations (migrations/)
    db            wires them into the app (init_app)
    models        the tables; vault seals the secrets stored in them; keys holds the signing keys

Anything may import storage; storage imports only the base (koo, config, extensions).
"""
