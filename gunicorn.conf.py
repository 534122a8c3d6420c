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
# gunicorn's default format with the path only (%(U)s) and no Referer: a query string holds
# customers' signed links (`t`), which are never written down
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(L)s'
errorlog = "-"
forwarded_allow_ips = os.environ.get("TIERGATE_FORWARDED_ALLOW_IPS", "127.0.0.1")
