"""The gateway agent: verifies node uplinks, stores them durably, forwards to the cloud."""
