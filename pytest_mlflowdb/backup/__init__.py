"""Backup restorability: is a ``pg_dump`` file readable, does it restore into a working
MLflow database, how old is its data (RPO) and how long does a restore take (RTO)?

The modules are small and each knows one thing: ``options`` (parsing the area's option
values; light, the dormant plugin imports it), ``tools`` (finding ``pg_dump``,
``pg_restore`` and ``psql`` of a fitting version, and handing a connection to them with
the password in the child's environment only), ``archive`` (format and header of a dump,
reading it end to end), ``dump`` (``pg_dump -Fc`` of the live target for
``--mlflowdb-restore-test``), ``restore`` (loading it into a scratch database: the one
restorer, the janitor's too), ``copy`` (what the restored copy and the live target hold),
``verdicts`` (their findings), ``rehearsal`` (MLflow's upgrade run on the copy),
``scratch`` (refusing the audited database as a scratch server), ``shared`` (once per
run under xdist) and ``pipeline`` (the whole run, once per target, its findings per
check). The area itself is ``checks/backup.py``.
"""
