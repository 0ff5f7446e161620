"""The Backups page: the door lab administrators use, in their browser.

A door like the CLI: it checks requests with the domain (`labvault`) and starts the same flows,
in this process on the embedded default or as runs of the deployments when a Prefect server is
configured. Pages are rendered on the server (Jinja2); one small vendored script refreshes a
running backup's fields. Only admins of an organization reach that organization's backups.
"""
