"""Privacy: the notice a deployer shows, retention caps shared by every store, and erasure across them."""
