"""Batch scoring of a data directory in account buckets, so memory stays bounded.

Everything the scorer computes for a buying group depends only on its own account's rows,
so a data directory can be scored one bucket of accounts at a time with the same result.
``staging.stage_tables`` validates the tables and partitions the activities by bucket;
``scoring.score_buckets`` (pandas) or ``buying_groups.serving.spark_engine`` (Spark) score the
buckets, ``cache.AccountCache`` carries unchanged accounts over from the last run, and
``job.score_directory`` runs it all for ``bg-score``. Memory holds the accounts, contacts
and opportunities, one chunk or bucket of activities, and the outputs.
"""
