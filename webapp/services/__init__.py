"""The domain: accounts, jobs and their delivery. No Flask in here (a test checks it).

Views (API and pages), the CLI and Huey tasks call these functions, so the rules of a
job's life live in one place and the surfaces cannot disagree.

The packages import each other in one direction only, each from those before it:

    errors, audit (no domain dependencies)
    -> scheduling   pure time rules: zones, wall times, windows, cron, their input shapes
    -> validation   the input rules shared by the API and the forms
    -> accounts     users, passwords, tokens, disabling, the first admin
    -> jobs         create, edit, cancel, requeue, bulk actions, change marks, retention
    -> recurring    recurring schedules and the jobs their occurrences become
    -> delivery     claim, attempt, leases, recovery, expiry, pause
    -> monitoring   heartbeats, tallies, delivery figures, job counts, the status figures

Beneath them all: webapp.models (one module per collection), webapp.timeutil, and the
SMTP adapter webapp.mail (which imports nothing from here). The queue is not imported
here at all: whatever needs its depth is handed it (monitoring.stats.collect).
"""
