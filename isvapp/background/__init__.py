"""The durable job queue (jobs), the worker that runs it (worker), and what runs on it after the
answer has gone: provisioning hooks, usage pushes, alerts, status counters and upkeep.

The worker process (`isvapp worker`) runs it. background imports storage, the outbound rules and,
for the usage push, the open-API client in market; never the domain, which enqueues into it
(and whose job handlers, such as the order-details fetch, live in the domain). jobs and worker
import none of the modules whose work they run: each registers its handlers, periodic tasks and
watchers on the app's registry (registry.py, ``register_jobs``), from one list in create_app.
"""
