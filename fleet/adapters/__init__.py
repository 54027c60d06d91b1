"""Adapters: the only modules that talk to libraries and processes (kubernetes, git, pulumi, boto3 for S3, subprocess).

Each has one choke point that turns library errors into :mod:`fleet.errors` and holds the retry policy.
"""
