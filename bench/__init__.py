"""Load and latency benchmarks, side by side with the database's own limit (`make bench`)."""
