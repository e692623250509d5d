"""The whole development stack in one foreground command: `python -m devstack`.

Whatever the environment does not point elsewhere (MongoDB, the mail server) is started
locally under var/, and supervisord runs it all next to the web app and the Huey worker.
"""
