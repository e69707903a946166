"""What RQ runs: job functions (thin calls into synth.pipeline), worker start-up and cron. See the scale-out issue."""
