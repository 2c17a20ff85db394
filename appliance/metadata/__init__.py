"""The metadata service guests read at 169.254.169.254 (documents.py: what; server.py: how)."""
