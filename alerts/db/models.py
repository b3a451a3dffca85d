"""SQLModel tables. Importing this module registers them on `SQLModel.metadata`.

The storage issue adds the tables (users, destinations, accounts, rules,
events, deliveries); migrations in `alembic/versions` follow them.
"""
