"""`curate new-workflow` and `curate db init`: files in the house conventions.

`plan.plan_new_workflow` and `alembic_setup.plan_alembic_setup` work out every file to write
or change, and check everything before anything is written; `changes.apply` writes them.
`history` reads the project's Alembic history through Alembic itself. See
`curate.cli.new_workflow` and `curate.cli.db`.
"""
