"""Production defaults for `gunicorn -c gunicorn.conf.py wsgi:app`; override with env vars."""

import multiprocessing
import os

bind = os.environ.get("TIERGATE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("TIERGATE_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("TIERGATE_THREADS", 4))
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("TIERGATE_FORWARDED_ALLOW_IPS", "127.0.0.1")
