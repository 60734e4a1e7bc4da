"""The hands: sandbox providers (local, namespace, docker, a pool of any), their tools, and the credential proxy
that keeps secrets out of every sandbox. Their contract is sandboxes/base.py (SandboxProvider, Sandbox)."""
