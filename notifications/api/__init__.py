"""REST API for notification clocks, customer notices, withheld details and deliveries."""
