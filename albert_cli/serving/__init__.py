"""``albert serve``: model directories behind TensorFlow Serving's REST API.

* `sources`: what a MODEL argument names (a model directory, a TFLite one, or a base path of version folders);
* `batching`: requests that arrive together merged into one inference batch, run off the event loop;
* `models`: a served model's versions (load, warm-up, poll for a new one, swap, status);
* `rest`: TensorFlow Serving's request and response JSON, and its errors (no HTTP here);
* `app`: the Starlette application (routes, bearer token, access log, Prometheus metrics);
* `server`: loads the models, binds the socket, runs uvicorn until SIGTERM/SIGINT.
"""
