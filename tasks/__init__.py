"""Prefect tasks of byokflow and what they use: read a shard, run a step over it, write a part."""
