"""The model catalogue data: ``models.toml``. Loaded by ``hyperlocal.core.catalog``."""
