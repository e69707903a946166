"""The REST API: jobs in (JSON or YAML specs, checked as `synth validate` checks them), progress, records and
dataset coverage out, per tenant; /healthz, /readyz, /metrics and a status page. `create_app` builds it."""
