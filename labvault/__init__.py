"""labvault: backups of lab-data platforms, as a Prefect-free domain package.

Nothing in this package imports Prefect, so it can be tested and reused on its own;
`tasks/` and `flows/` are thin adapters over it.
"""

__version__ = "0.1.0"
