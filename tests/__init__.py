"""byokflow test suite."""
