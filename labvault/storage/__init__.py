"""Where bytes live: the `Storage` protocol, its folder and S3 implementations, and the readers
that stream one object (open ahead, resumed by range).

It sits below the pipeline and knows no rows: it must never import `labvault.db`,
`labvault.archive`, `labvault.zipstream` nor any operation of `labvault`.
"""
