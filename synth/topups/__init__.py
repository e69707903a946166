"""Top-ups of thin categories: a dataset's targets against the accepted records of all its runs, turned into
yield-sized rounds (`synth topup`, `POST /v1/datasets/{name}/topup`, or RQ's cron scheduler via workers.cron)."""
