"""Fault-injection helpers for the reliability tests."""
