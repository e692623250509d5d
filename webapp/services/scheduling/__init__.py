"""Pure time rules: time zones, wall-clock times, availability windows and cron.

No database and no clock of its own: every function takes `now` or the times it works
on, so the rules can be property-tested. Imports only webapp.timeutil; everything that
schedules (jobs, recurring schedules, delivery's retries) builds on it.
"""
