"""Drives Drover's master with the third-party Marathon client from PyPI (`marathon`),
unchanged: create, list, scale and delete an app. Usage: marathon_client.py URL APP_ID.
Prints "ok" and exits 0 when every step did what Marathon would do.

The app gives only `cmd` (Drover runs it in the agent's --default-image): the client's JSON
encoder for nested objects (container, health checks) uses `collections.Iterable`, which
Python 3.10 removed, so with a current Python the client can only send flat definitions."""
import sys
import time

from marathon import MarathonClient
from marathon.models import MarathonApp

url, app_id = sys.argv[1], sys.argv[2]
client = MarathonClient(url)


def wait(what, check, timeout=40.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting until {what}")


app = MarathonApp(
    cmd="sleep 3600",
    cpus=0.1,
    mem=32,
    instances=1,
)
created = client.create_app(app_id, app)
assert created, "create_app returned False"
assert created.id == app_id, created.id
print("created", created.id, flush=True)

assert app_id in [a.id for a in client.list_apps()], "the app is not listed"
wait("1 task runs", lambda: client.get_app(app_id).tasks_running == 1)
wait("the deployment finishes", lambda: not client.get_app(app_id).deployments)
print("listed and running", flush=True)

client.scale_app(app_id, instances=2)
wait("2 tasks run", lambda: client.get_app(app_id).tasks_running == 2)
tasks = client.list_tasks(app_id)
assert len(tasks) == 2, tasks
assert all(t.state == "TASK_RUNNING" for t in tasks), [t.state for t in tasks]
wait("the scale deployment finishes", lambda: not client.get_app(app_id).deployments)
print("scaled to 2", flush=True)

# An app no node can take waits in the queue, with the reason.
stuck_id = app_id + "-stuck"
# (more CPU than the node has left: its 4 less the 2 × 0.1 above)
client.create_app(stuck_id, MarathonApp(cmd="sleep 3600", cpus=3.95, mem=16, instances=1))


def stuck_reason():
    for item in client.list_queue():
        if item.app.id == stuck_id:
            return item.processed_offers_summary["rejectSummaryLastOffers"][0]["reason"]
    return None


wait("the unplaceable app is queued", lambda: stuck_reason() is not None)
assert "not enough free cpus" in stuck_reason(), stuck_reason()
assert any(d.affected_apps == [stuck_id] for d in client.list_deployments())
assert client.get_info().framework_id
client.list_groups()
client.delete_app(stuck_id, force=True)
print("queue, deployments, info", flush=True)

client.delete_app(app_id)
wait("the app is gone", lambda: app_id not in [a.id for a in client.list_apps()])
print("ok", flush=True)
