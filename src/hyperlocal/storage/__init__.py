"""Where outputs live: a local directory by default, S3-compatible storage when configured."""
