"""Credentials outside every sandbox: the vault that holds secrets and the proxy that uses them."""
