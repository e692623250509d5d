"""The consumers' entry module: `huey_consumer worker.huey`.

It builds the app once and binds it for the tasks, then hands Huey every task module.
The queue (tasks/queue.py) and the tasks never import the app factory, so the web app
can queue work without building a second app.
"""

import tasks
from tasks import context
from webapp.app import create_app

app = create_app()
context.bind(app)
huey = tasks.huey
