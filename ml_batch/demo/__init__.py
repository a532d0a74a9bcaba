"""The demo: synthetic sources of both data shapes, their specs, and `make demo`'s end-to-end job."""
