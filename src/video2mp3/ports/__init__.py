"""The ports: what the services need from the outside world, as ``typing.Protocol`` classes.

Each has a production adapter and an embedded one under ``video2mp3.adapters``; both pass the same
contract suite in ``tests/contract``.
"""
