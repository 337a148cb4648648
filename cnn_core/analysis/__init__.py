"""Looking at a trained network: test-set evaluation, Grad-CAM and feature maps, what-if edits, adversarial probes, nearest neighbours, figures."""
