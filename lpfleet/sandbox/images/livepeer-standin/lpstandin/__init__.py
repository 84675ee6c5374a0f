"""Stand-ins for go-livepeer, ai-runner and a BYOC server, for the lpfleet sandbox.

They honour the contracts in the project's reference (flags, aiModels.json decoding, runner containers with
their labels, names, ports, mounts and restart policy, /health states, weights read from /models, and the log
lines operators see), so deploy, verification and diagnosis meet real behaviour. Stdlib only.
"""
