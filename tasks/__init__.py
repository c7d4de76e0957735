"""The engine: everything between a spec that passed preflight and the records in the store.

Read the packages in this order to follow one row from Parquet to its part:

    tasks.inputs      the input dataset: opened, checked, read shard by shard in bounded memory
    tasks.store       the record store: done index, journal, parts, compaction, one run at a time
    tasks.limits      what may be spent and how fast: the budget and each key's rate governor
    tasks.rows        one row of one (step, model) through its stages: prepare, send, record
    tasks.run         one run's state (`RunContext`), its progress, its stop signal, its pools
    tasks.shard_task  the Prefect task: a step over a shard, every model at once, one part each
    tasks.evaluation  scoring outputs, statistics and the HTML report

Dependencies point one way: inputs, store and limits know only `schemas` and `gateway`; rows
builds on them; run builds on rows; the shard task on run; `flows/` (orchestration and the CLI)
on all of them.
"""
