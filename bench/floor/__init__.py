"""The benchmark's floor: the least a Django+DRF endpoint can do for an authenticated,
encrypted memory INSERT. bench/run.py serves it next to the real service and reports the
service's create throughput as a share of this one's."""
