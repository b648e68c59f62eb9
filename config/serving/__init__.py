"""How the service is served, and what it changes in the frameworks to serve it: the
gunicorn worker class (uvicorn_worker.py), the ASGI wrappers around Django's handler
(body_limit.py, sync_threads.py; config/asgi.py puts them together) and the middleware
ahead of Django's own (request_log.py, api_fast_path.py). Each module opens with the
limit it works around, what upstream would retire it, and the setting that turns it off.
"""
