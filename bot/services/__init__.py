"""Services: each opens no session of its own, takes one, and owns its commit."""
