"""What RQ runs: job functions (thin calls into synth.pipeline) and worker start-up."""
