"""The domain: accounts, jobs and their delivery. No Flask request in here.

Views (API and pages) and Huey tasks call these functions, so the rules of a
job's life live in one place and the surfaces cannot disagree.
"""
