"""Real models through the operator's own provider keys: fal, Replicate, OpenAI, Gemini, BFL.

``base.py`` is the interface each adapter implements, ``routes.py`` and ``mapping.py`` the
catalogue's routes and their input mapping, ``router.py`` the engine that picks a route per
job and fails over between real routes, and ``health.py`` the circuit breaker and the caps on
jobs in flight. Nothing here imports an SDK: each adapter module does, when it is created.
"""
