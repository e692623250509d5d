"""Delivery: a job's way from PENDING to COMPLETED or FAILED, exactly once.

Owns the claim and each attempt's fenced writes (attempts), the rules of an attempt and
its retries (rules), the leases a process renews while it sends, recovery of jobs whose
worker died, expiry, and pausing delivery. The SMTP send itself is injected (webapp.mail
provides it), so these rules are tested with any sender. Imports jobs and scheduling.
"""
