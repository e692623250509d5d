"""Recurring schedules: a cron in a zone, and the jobs its occurrences become.

Owns the schedules users keep (create, change, pause, delete), their inputs, and the
materializer that turns due occurrences into ordinary jobs exactly once. Imports
scheduling, validation, accounts and jobs.
"""
