"""labvault's archive format: the layout, entry names, manifest, writer and the two verifiers.

It builds on `labvault.zipstream` and writes to and reads from `labvault.storage`. It knows no
database: it must never import `labvault.db` nor any operation of `labvault` (backups, restore,
catalog, …); the operations hand it rows already read as plain values.
"""
