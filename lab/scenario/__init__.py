"""What a user asks for: the YAML scenario and its fields, the matrix of cells,
and the step kinds (steps/), each a file registered in steps/__init__.py.
"""
