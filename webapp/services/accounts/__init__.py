"""Accounts: who may sign in and what an account may do.

Owns users (register, sign in, roles, the account's settings, revoked tokens), password
hashing, disabling and enabling an account, and the first admin made from the environment.
Imports errors, validation and scheduling (an account's time zone and windows).
"""
