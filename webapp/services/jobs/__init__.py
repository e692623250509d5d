"""Jobs: what users and admins do with the emails they schedule.

Owns creating, reading, editing, cancelling and requeueing a job, a job's timing from
what was asked, admins' bulk actions, the change marks that let polls answer 304, and
retention. Imports errors, validation, scheduling and accounts; never delivery.
"""
