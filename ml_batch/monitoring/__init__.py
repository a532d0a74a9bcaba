"""Monitoring after publish: drift against the reference profile, estimated and realized performance, shadow
scoring."""
