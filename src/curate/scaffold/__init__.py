"""`curate new-workflow`: the files of a new workflow, in the house conventions.

`plan_new_workflow` works out every file to write or change and checks everything before
anything is written; `apply` writes them. See `curate.cli.new_workflow`.
"""
