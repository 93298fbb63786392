"""The demo pipeline's topics: tasks in, results out, alerts on the side.

streams topics apply agents.demo:app
streams publish demo.tasks --file agents/demo_tasks.jsonl --key-field task_id
streams tail demo.tasks --from-beginning --limit 3
"""

from streams import App
from streams.events import Alert, TaskCompleted, TaskRequested

app = App("demo")

tasks = app.topic("demo.tasks", value=TaskRequested, partitions=6)
results = app.topic("demo.results", value=TaskCompleted, partitions=6)
alerts = app.topic("demo.alerts", value=Alert, partitions=1, retention_ms=7 * 24 * 3600 * 1000)
