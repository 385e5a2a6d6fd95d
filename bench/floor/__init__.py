"""The benchmark's floor: the least a Django+DRF endpoint can do for the service's create
and list (bench/floor/views.py). bench/run.py serves it from the same gunicorn as the
service and reports the service's throughput and CPU per request as a share of this one's."""
