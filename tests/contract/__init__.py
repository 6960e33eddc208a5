"""Contract suites: behaviour every implementation of a core port must show, fakes included."""
