"""Promotion: the holdout gate, retraining, shadow promotion and artifacts trained elsewhere."""
