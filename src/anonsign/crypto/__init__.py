"""Every call into pyca/cryptography and argon2-cffi lives in this package, one small module each.

``labels`` holds the versioned domain-separation strings; ``kdf`` is the only user of
argon2-cffi; ``dedup`` turns a normalized identifier into a dedup key; ``master`` wraps
per-petition peppers under the server master key; ``keys`` reads and writes organizer
public keys; ``seal`` seals a contact to them (the web process can seal, never open);
``keyfile`` and ``unseal`` are for the offline machine only.
"""
