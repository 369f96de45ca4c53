"""Petitions and their rules, identifier normalization, and preparing a signature.

No HTTP and no SQL here: the web layer and the CLI call these rules, and storage
keeps what they produce.
"""
