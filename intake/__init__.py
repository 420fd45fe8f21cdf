"""The intake API of the burst path (docs/queue.md): validate an upload as /predict does, store it under
its content hash, publish one job per idempotency key, answer 202 at once. Small: no torch, no model."""
