"""HTTP only: routes per surface, wire schemas, dependencies, and the one error mapping."""
