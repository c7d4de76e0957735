"""Tests of the sandbox gateway (package `sandbox`)."""
