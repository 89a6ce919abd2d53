"""Stand-ins for the test suite, the benches and the offline demo (not used by the server)."""
