"""Prefect flows of byokflow and its command-line interface."""
