"""The domain, with no FastAPI: catalogue, keys, ledger, rate limits, jobs, generation."""
