"""Side effects: one adapter per outside system (kube, images, loadtest, local)."""
