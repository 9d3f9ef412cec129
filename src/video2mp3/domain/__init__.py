"""What the services agree on: the message contract (``events``) and the job life cycle (``jobs``).

Pure Python: no frameworks, no adapters.
"""
