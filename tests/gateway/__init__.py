"""Tests of the gateway client (package `gateway`)."""
