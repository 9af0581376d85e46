"""Engines turn a validated request into media. See ``base.Engine`` for the contract."""
