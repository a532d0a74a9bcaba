"""What operators and analysts receive: alerts (delivered, then recorded), stored reports and the analyst role."""
