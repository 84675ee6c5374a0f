"""The embedded sandbox fleet: local stand-ins for everything lpfleet talks to in production.

Production modules never import this package; the sandbox is selected by inventory and group data.
"""
