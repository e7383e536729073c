"""Search: Optuna explores mappings, the latency model scores them, the run store keeps the evidence."""
