"""Everything about a checkup record until it is a model matrix."""
